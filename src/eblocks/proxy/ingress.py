"""The ingress gateway: requests from outside the mesh, routed by path to blocks and patterns.

Per request, after the block's own inbound checks (TLS, end-user JWT,
authorization, rate limits: the `Block` runs them for every app block)::

    preflight? -> answered here (CORS)
    first route whose match holds -> client.call(route.to, message)
    no route -> 404 no_route

The message carries the request's body and its end-to-end headers, minus what
only the mesh may set (``x-eblocks-*``: a client never chooses its pattern,
stage, deadline or user), minus the ``Authorization`` header (the verified
user travels on as the per-hop token's subject, never as the raw JWT), plus
``x-eblocks-path``: the path after ``strip_prefix``, with its query. Replies
go back with the headers their block set, minus the mesh's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from aiohttp import web
from yarl import URL

from eblocks._types import Clock, SystemClock
from eblocks.block.block import PREFLIGHT, mesh_client, read_body
from eblocks.block.inbound import PEER
from eblocks.errors import MeshError, NoRouteError
from eblocks.message import METHOD_HEADER, PATH_HEADER, USER_HEADER, Message
from eblocks.policies.match import Matcher, RequestView, compile_match
from eblocks.policies.target import EDGE_KEY, normal_path
from eblocks.proxy.cors import is_preflight, preflight_headers, response_headers
from eblocks.respond import error_response
from eblocks.spec.gateway import Cors, GatewayRoute, IngressGateway

__all__ = ["ingress_app", "mesh_message", "reply_headers"]

_DROPPED = frozenset({"authorization", "traceparent", "tracestate", "content-length", "host"})
_MESH_PREFIX = "x-eblocks-"


def mesh_message(
    body: bytes,
    headers: Mapping[str, str],
    path: str,
    query: str,
    user: str | None,
    method: str = "POST",
) -> Message:
    """The message an external request becomes (``headers`` any case; pure)."""
    kept = {}
    for name, value in headers.items():
        key = name.lower()
        if key not in _DROPPED and not key.startswith(_MESH_PREFIX):
            kept[key] = value
    msg = Message.from_wire(body, kept)
    extra = {PATH_HEADER: f"{path}?{query}" if query else path, METHOD_HEADER: method}
    if user:
        extra[USER_HEADER] = user
    return msg.replace(headers=extra)


def reply_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A reply's headers as the outside sees them: the mesh's own removed."""
    return {k: v for k, v in headers.items() if not k.startswith(_MESH_PREFIX)}


def _strip(path: str, prefix: str | None) -> str:
    if prefix and path.startswith(prefix):
        rest = path[len(prefix) :]
        if not rest or rest.startswith("/") or prefix.endswith("/"):
            return rest if rest.startswith("/") else "/" + rest
    return path


def ingress_app(
    block: str,
    gateway: IngressGateway,
    *,
    max_body: int,
    timeout: float = 30.0,
    clock: Clock | None = None,
) -> web.Application:
    """The aiohttp app of an ingress gateway block (served by `Block`, which adds the checks).

    ``timeout`` bounds the wait for a request's body (the block's ``timeout``).
    """
    routes: Sequence[tuple[Matcher, GatewayRoute]] = [
        (compile_match(route.match), route) for route in gateway.routes
    ]
    time = clock or SystemClock()
    cors = gateway.cors

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = normal_path(request.rel_url.raw_path)  # as the target will read it
        view = RequestView(request.method, path, request.query, headers)
        route = next((r for match, r in routes if match(view)), None)
        try:
            if route is None:
                raise NoRouteError(
                    f"no route of gateway {block!r} matches {request.method} {request.path}",
                    detail={"method": request.method, "path": request.path},
                )
            peer = request.get(PEER)
            msg = mesh_message(
                await read_body(request, max_body, timeout),
                request.headers,
                URL.build(path=_strip(path, route.strip_prefix)).raw_path,  # re-escaped
                request.rel_url.raw_query_string,
                getattr(peer, "user", None),
                request.method,
            )
            deadline = time.monotonic() + route.timeout if route.timeout is not None else None
            reply = await mesh_client(request.app).call(route.to, msg, deadline=deadline)
        except MeshError as exc:
            return error_response(exc.with_origin(block))
        out = reply_headers(reply.headers)
        out.setdefault("content-type", "application/octet-stream")
        return web.Response(body=reply.body, headers=out)

    app = web.Application(client_max_size=max_body)
    app[EDGE_KEY] = True  # outside callers: keyed by address, never by a claimed source
    app.router.add_route("*", "/{tail:.*}", handle)
    if cors is not None:
        app[PREFLIGHT] = _preflight(cors)

        async def add_cors(request: web.Request, response: web.StreamResponse) -> None:
            lower = {k.lower(): v for k, v in request.headers.items()}
            if is_preflight(request.method, lower):
                return  # answered whole by `_preflight`: a refused one gets no CORS header
            for name, value in response_headers(cors, request.headers.get("origin")).items():
                response.headers.setdefault(name, value)

        app.on_response_prepare.append(add_cors)
    return app


def _preflight(cors: Cors) -> Callable[[web.Request], web.StreamResponse | None]:
    """Answers CORS preflights before the block's checks (a preflight carries no credentials)."""

    def answer(request: web.Request) -> web.StreamResponse | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not is_preflight(request.method, headers):
            return None
        return web.Response(status=204, headers=preflight_headers(cors, headers))

    return answer
