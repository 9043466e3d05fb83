"""Outbound HTTP: a plaintext port on 127.0.0.1 per upstream, into the full client stack.

The app calls ``http://127.0.0.1:<port>/any/path`` as if the upstream were
local; the proxy turns each request into a mesh call to the upstream block
or pattern (`MeshClient.call`): routes, deadline, retries with their budget,
the balancer, circuit breakers, the request token and pooled mTLS — and the
outbound metrics, spans and access log lines of the proxy's block::

    app --(plaintext, loopback)--> 127.0.0.1:<port> --MeshClient--> <target> (mTLS)

A call between blocks is a ``POST /`` with the path in ``x-eblocks-path``; the
app's method travels in ``x-eblocks-method`` (a sidecar in front of the target
restores both). The body is read whole: retries resend it. A mesh error is
answered as `respond.py` answers it (status, ``x-eblocks-error``, JSON body);
so is an error status from the target, whose body the caller sees only
in the error's ``body`` field.
"""

from __future__ import annotations

from aiohttp import web

from eblocks.block.client import MeshClient
from eblocks.block.server import Listener
from eblocks.errors import MeshError, PayloadTooLargeError
from eblocks.message import (
    DEADLINE_HEADER,
    METHOD_HEADER,
    PATH_HEADER,
    PATTERN_HEADER,
    SOURCE_HEADER,
    STAGE_HEADER,
    Message,
)
from eblocks.respond import error_response

__all__ = ["UpstreamPort"]

# Set by the mesh for each hop; an app must not steer them through its local port.
_CALLER_MAY_NOT_SET = (SOURCE_HEADER, PATTERN_HEADER, STAGE_HEADER, DEADLINE_HEADER)
_REPLY_DROPPED = frozenset({PATTERN_HEADER, STAGE_HEADER, DEADLINE_HEADER, "content-length"})


class UpstreamPort:
    """``127.0.0.1:port`` whose requests become calls to ``target`` through ``client``."""

    def __init__(
        self, source: str, target: str, client: MeshClient, *, max_body: int, drain: float
    ) -> None:
        self.target = target
        self._client = client
        self._max_body = max_body
        app = web.Application(client_max_size=max_body)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._listener = Listener(app, block=f"{source} upstream {target}", drain=drain)

    @property
    def port(self) -> int:
        return self._listener.port

    async def start(self, port: int, host: str = "127.0.0.1") -> int:
        return await self._listener.start(host, port)

    async def close(self) -> None:
        await self._listener.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge as exc:
                raise PayloadTooLargeError(
                    f"request body exceeds {self._max_body} bytes",
                    detail={"max_body": self._max_body},
                ) from exc
            reply = await self._client.call(self.target, message_of(request, body))
        except MeshError as exc:
            return error_response(exc)
        headers = {k: v for k, v in reply.headers.items() if k not in _REPLY_DROPPED}
        headers.setdefault("content-type", "application/octet-stream")
        return web.Response(body=reply.body, headers=headers)


def message_of(request: web.Request, body: bytes) -> Message:
    """The mesh message for one request of the app: its path and method in mesh headers."""
    msg = Message.from_wire(body, request.headers).without(*_CALLER_MAY_NOT_SET)
    extra = {PATH_HEADER: request.raw_path}  # as the app sent it
    if request.method != "POST":
        extra[METHOD_HEADER] = request.method
    return msg.replace(headers=extra)
