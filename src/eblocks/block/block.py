"""`Block`: one running instance of a service — the PM plus its mesh components.

Lifecycle (an Enum would add nothing here; the flags are read by the probes)::

    created --start()--> serving (ready) --stop()/SIGTERM--> draining --> stopped

While draining, `/readyz` answers 503 so no new work is routed here, the
PM socket stops accepting, and in-flight requests finish within ``drain``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from eblocks._types import Clock, SystemClock
from eblocks.block.client import MeshClient
from eblocks.block.context import Context
from eblocks.block.handler import adapt_handler
from eblocks.block.inbound import PEER
from eblocks.block.server import Listener, PmSocket, any_address
from eblocks.block.stack import Admission, app_admission, server_stack
from eblocks.errors import BadRequestError, MeshError, PayloadTooLargeError, RequestTimeoutError
from eblocks.message import (
    DEADLINE_HEADER,
    IDEMPOTENCY_HEADER,
    PATTERN_HEADER,
    REQUEST_ID_HEADER,
    STAGE_HEADER,
    Message,
)
from eblocks.patterns import Plan
from eblocks.policies import LivePolicies
from eblocks.policies.target import EDGE_KEY, SERVED_KEY, Served
from eblocks.respond import error_response
from eblocks.security.admin import admin_guard
from eblocks.spec.models import BlockSettings, Defaults, resolve_settings
from eblocks.spec.policies import Policies
from eblocks.telemetry import Telemetry
from eblocks.telemetry.admin import add_admin_routes
from eblocks.telemetry.inbound import middleware, observe
from eblocks.workload.pools import Pools
from eblocks.workload.roles import dispatch

if TYPE_CHECKING:
    from eblocks.security import Auth

__all__ = ["PREFLIGHT", "Block", "mesh_client", "read_body"]

log = logging.getLogger("eblocks.block")

_CALLER_FAULTS = frozenset({400, 404, 405, 413, 422})  # statuses that count against a caller
_MESH_CLIENT = web.AppKey("eblocks.mesh_client", MeshClient)
Preflight = Callable[[web.Request], "web.StreamResponse | None"]
PREFLIGHT: web.AppKey[Preflight] = web.AppKey("eblocks.preflight")
"""An app may answer some requests before the block's checks (a gateway's CORS preflights)."""


def mesh_client(app: web.Application) -> MeshClient:
    """The mesh client of the block serving ``app`` (an app block calls the mesh with it).

    In a request handler: ``await mesh_client(request.app).call("store", msg)``.
    """
    try:
        return app[_MESH_CLIENT]
    except KeyError:
        raise RuntimeError("this application is not served by a block in a mesh") from None


def _peer_of(request: web.Request) -> str | None:
    """Who calls an application block, as `Block._track`'s admission verified it.

    The SPIFFE ID of a mesh caller; for an outside client (an ingress block:
    no client certificate) its verified end user (``user/<sub>``), else its
    address (``addr:<ip>``) — never a header the client could set. None when
    the block has no admission (mTLS off), where the mesh trusts its headers.
    """
    peer = request.get(PEER)
    if peer is None:
        return None
    if peer.identity is not None:
        return str(peer.identity)
    if peer.user:
        return f"user/{peer.user}"
    return peer.source or None


_ROUTING_HEADERS = frozenset({PATTERN_HEADER, STAGE_HEADER, DEADLINE_HEADER, "content-length"})


async def read_body(request: web.Request, max_body: int, bound: float) -> bytes:
    """The request's body, within ``max_body`` bytes and ``bound`` seconds (the block's
    ``max_body`` and ``timeout``).

    A body that stalls (a client that sent its headers and then too little)
    is refused with 408 once the block's ``timeout`` has passed, not waited
    for forever; a caller that went away is a cancelled request (499).
    """
    try:
        async with asyncio.timeout(bound):
            return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLargeError(
            f"request body exceeds {max_body} bytes", detail={"max_body": max_body}
        ) from exc
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {bound:g}s", detail={"timeout": bound}
        ) from None
    except ConnectionResetError:  # the caller went away mid-body: nobody to answer
        raise asyncio.CancelledError from None


class Block:
    """Serve a handler (or an aiohttp app) as one Eblock instance.

    ``client`` is the mesh client handlers reach through ``ctx.call``; a block
    outside a mesh (tests, benchmarks) may leave it out. ``telemetry`` (default:
    the client's, else a new one) counts its requests and serves ``/metrics``.
    ``policies`` (default: the client's, else none) are the live policies whose
    rate limits, bulkhead and faults the block enforces on what it receives;
    ``rng`` draws the faults (default: a fresh, unseeded one).
    ``socket`` replaces the PM's HTTP listener by another protocol's (the sidecar's
    opaque TCP mode); the block then has no handler nor app, only its admin port.
    """

    def __init__(
        self,
        name: str,
        handler: Callable[..., Any] | None = None,
        *,
        app: web.Application | None = None,
        settings: BlockSettings | None = None,
        plan: Plan | None = None,
        client: MeshClient | None = None,
        instance: str | None = None,
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
        auth: Auth | None = None,
        server_ssl: ssl.SSLContext | None = None,
        policies: LivePolicies | None = None,
        rng: random.Random | None = None,
        socket: PmSocket | None = None,
    ) -> None:
        """``server_ssl`` replaces the PM's TLS context (an ingress gateway's own certificate)."""
        self.name = name
        self.auth = auth  # mTLS, tokens and authorization (eblocks.security); None: plaintext
        self.instance = instance or f"{name}-{uuid.uuid4().hex[:8]}"
        self.settings = settings or resolve_settings(name, None, Defaults())
        self.client = client
        if policies is None:
            policies = client.policies if client is not None else LivePolicies.of(Policies())
        self.policies = policies
        self._clock = clock or SystemClock()
        self._executor = ThreadPoolExecutor(self.settings.threads, thread_name_prefix=name)
        self._plan = plan or Plan({})
        self._ready = False
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.inflight = 0
        self.pools = Pools(name, self._plan, client)  # managers and autoscalers: /v1/pools
        self.telemetry: Telemetry = (
            telemetry
            or (client.telemetry if client is not None else None)
            or Telemetry(name, self.instance, clock=self._clock)
        )
        self.telemetry.settings = self.settings
        self.telemetry.spec = client.spec if client is not None else None
        self.admission = Admission.of(
            self.policies, name, self._clock, rng or random.Random(), self.telemetry
        )
        self.telemetry.policies = self.policies
        if sum(entry is not None for entry in (handler, app, socket)) != 1:
            raise ValueError("Block needs exactly one of handler=, app= or socket=")
        if handler is not None:
            roles = dispatch(
                name,
                self._plan,
                adapt_handler(handler, self._executor),
                link=client,
                clock=self._clock,
                backoff=self.settings.retries,
                pools=self.pools,
                hooks=self.telemetry.hooks,
            )
            self._handle = server_stack(roles, self._clock, self.admission)
            app = web.Application(client_max_size=self.settings.max_body)
            serve = observe(self.telemetry, self._serve) if self.telemetry.requests else self._serve
            app.router.add_route("*", "/{tail:.*}", serve)
        elif app is not None:
            served: Served = app.get(SERVED_KEY) or "app"  # the sidecar's forwarder: "sidecar"
            edge = app.get(EDGE_KEY, False)  # an ingress gateway: outside callers
            app.middlewares.insert(0, app_admission(self.admission, _peer_of, served, edge=edge))
            app.middlewares.insert(0, self._track)
            if client is not None:
                app[_MESH_CLIENT] = client
            if self.telemetry.requests:
                app.middlewares.insert(0, middleware(self.telemetry))
        self._pm: PmSocket = socket or self._http_listener(app, auth, server_ssl)
        self._admin_routes = self._admin_app()
        self._admin = self._admin_listener(self._admin_routes, auth)

    def _http_listener(
        self, app: web.Application | None, auth: Auth | None, server_ssl: ssl.SSLContext | None
    ) -> Listener:
        assert app is not None  # __init__ built one for a handler
        if server_ssl is None and auth is not None:
            server_ssl = auth.server_ssl()
        return Listener(
            app,
            block=self.name,
            drain=self.settings.drain,
            ssl=server_ssl,
            permissive=auth is not None and auth.mode == "permissive",
            on_plaintext=auth.plaintext_connection if auth is not None else None,
            on_refused=auth.connection_refused if auth is not None else None,
        )

    def _admin_listener(self, app: web.Application, auth: Auth | None) -> Listener:
        """TLS with the SVID unless mTLS is off here; data routes then need a mesh certificate."""
        admin_ssl = auth.admin_ssl() if auth is not None else None
        if auth is None or admin_ssl is None:
            return Listener(app, block=self.name, drain=1.0)
        app.middlewares.append(admin_guard(auth, self.name))
        return Listener(
            app,
            block=self.name,
            drain=1.0,
            ssl=admin_ssl,
            permissive=auth.mode == "permissive",  # probes answer; data routes get a 401
            on_plaintext=auth.admin_plaintext_connection,
            on_refused=auth.admin_connection_refused,
        )

    @classmethod
    def in_mesh(
        cls,
        name: str,
        handler: Callable[..., Any] | None,
        *,
        app: web.Application | None,
        client: MeshClient,
        instance: str | None = None,
        auth: Auth | None = None,
        server_ssl: ssl.SSLContext | None = None,
    ) -> Block:
        """A block of ``client``'s mesh, with its settings and patterns."""
        spec = client.spec
        return cls(
            name,
            handler,
            app=app,
            settings=spec.settings(name),
            plan=client.plan,
            client=client,
            instance=instance,
            auth=auth,
            server_ssl=server_ssl,
        )

    @property
    def port(self) -> int:
        return self._pm.port

    @property
    def admin_port(self) -> int:
        return self._admin.port

    @property
    def ready(self) -> bool:
        return self._ready

    def add_admin_get(
        self, path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> None:
        """Serve ``GET path`` on the admin port (e.g. ``/v1/members``); call before start()."""
        self._admin_routes.router.add_get(path, handler)

    def add_admin_post(
        self, path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> None:
        """Serve ``POST path`` on the admin port (e.g. ``/v1/policies``); call before start()."""
        self._admin_routes.router.add_post(path, handler)

    async def start(
        self,
        host: str | None = None,
        port: int | None = None,
        admin_port: int = 0,
        admin_host: str | None = None,
    ) -> None:
        """Serve the PM on ``host:port`` and the admin API on ``admin_host:admin_port``.

        ``admin_host`` defaults to ``host``; ``*`` is every address of ``host``'s
        family (`any_address`): in a pod, the pod IP and the pod's loopback, which
        ``kubectl port-forward`` connects to.
        """
        host = host or self.settings.host
        await self.telemetry.start()
        await self._admin.start(
            any_address(host) if admin_host == "*" else admin_host or host, admin_port
        )
        try:
            await self._pm.start(host, port if port is not None else (self.settings.port or 0))
        except BaseException:
            await self._admin.close()  # a block that failed to start must not answer probes
            await self.telemetry.aclose()
            raise
        self._ready = True
        log.info("block %s instance %s serving on %s:%d", self.name, self.instance, host, self.port)

    def on_stop(self, close: Callable[[], Awaitable[None]]) -> None:
        """Run ``close()`` once the PM has drained (e.g. a gateway's client sessions)."""
        self._closers.append(close)

    async def stop(self) -> None:
        """Drain and stop: not ready, stop accepting, finish in-flight work, close."""
        self._ready = False
        await self.pools.aclose()
        await self._pm.close()
        for close in self._closers:
            await close()
        await self._admin.close()
        await self.telemetry.aclose()
        if self.client is not None:
            await self.client.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> Block:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.inflight += 1
        peer = None
        try:
            peer = self.auth.admit(request) if self.auth is not None else None
            body = await read_body(request, self.settings.max_body, self.settings.timeout)
            msg = Message.from_wire(body, request.headers)
            ctx = self._context(msg)
            if peer is not None:
                ctx.peer = str(peer.identity) if peer.identity is not None else None
                ctx.user = peer.user
                ctx.trust = peer.trust
            out = await self._handle(msg, ctx)
            if not out.headers:  # a bare reply: aiohttp's default type is application/octet-stream
                return web.Response(body=out.body)
            headers = {k: v for k, v in out.headers.items() if k not in _ROUTING_HEADERS}
            headers.setdefault("content-type", "application/octet-stream")
            return web.Response(body=out.body, headers=headers)
        except MeshError as exc:
            if peer is not None and exc.status in _CALLER_FAULTS and self.auth is not None:
                self.auth.record_error(peer)  # the caller's bad requests count against it
            return error_response(exc.with_origin(self.name))
        except Exception as exc:  # a defect in the mesh itself; never leak it
            log.exception("internal error in block %s", self.name)
            return error_response(
                MeshError(f"internal error: {type(exc).__name__}", origin=self.name)
            )
        finally:
            self.inflight -= 1

    def _context(self, msg: Message) -> Context:
        headers = msg.headers
        deadline = None
        raw = headers.get(DEADLINE_HEADER)
        if raw is not None:
            try:
                deadline = self._clock.monotonic() + int(raw) / 1000
            except ValueError:
                raise BadRequestError(
                    f"{DEADLINE_HEADER} must be an integer, got {raw!r}"
                ) from None
        return Context(
            block=self.name,
            instance=self.instance,
            request_id=headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex,
            idempotency_key=headers.get(IDEMPOTENCY_HEADER),
            deadline=deadline,
            headers=headers,
            client=self.client,
        )

    @web.middleware
    async def _track(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        self.inflight += 1
        try:
            if request.method == "OPTIONS" and PREFLIGHT in request.app:
                early: web.StreamResponse | None = request.app[PREFLIGHT](request)
                if early is not None:
                    return early
            if self.auth is not None:
                request[PEER] = self.auth.admit(request)
            response: web.StreamResponse = await handler(request)
            return response
        except MeshError as exc:  # refused by admission or a policy, or a failed mesh call
            return error_response(exc.with_origin(self.name))
        except web.HTTPRequestEntityTooLarge:  # the app read a body over max_body
            too_large = PayloadTooLargeError(
                f"request body exceeds {self.settings.max_body} bytes",
                detail={"max_body": self.settings.max_body},
            )
            return error_response(too_large.with_origin(self.name))
        finally:
            self.inflight -= 1

    def _admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/v1/pools", self._pools)
        app.router.add_get("/v1/security", self._security)
        add_admin_routes(app, self.telemetry)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "block": self.name, "instance": self.instance, "pid": os.getpid()}
        )

    async def _pools(self, _: web.Request) -> web.Response:
        return web.json_response({"instance": self.instance, **self.pools.snapshot()})

    async def _security(self, _: web.Request) -> web.Response:
        """Identity, modes and the refusal counters (``{}`` counters when mTLS is off)."""
        if self.auth is None:
            return web.json_response({"mtls": "disable", "counters": {}})
        return web.json_response(self.auth.stats())

    async def _readyz(self, _: web.Request) -> web.Response:
        body = {
            "ready": self._ready,
            "block": self.name,
            "instance": self.instance,
            "inflight": self.inflight,
        }
        return web.json_response(body, status=200 if self._ready else 503)
