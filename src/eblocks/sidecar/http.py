"""Inbound HTTP: the proxy's PM, an aiohttp app that forwards every request to the app.

Served by a `Block` (``app=``), so what reaches ``forward`` has already been
through the block's inbound path: mTLS termination, the peer's identity,
tokens and authorization (`Auth.admit`), request metrics, the server span
and the access log. ``forward`` only relays::

    caller --(mTLS)--> proxy PM --(plaintext, pooled keep-alive)--> 127.0.0.1:<app port>

Bodies stream both ways in chunks as they arrive (never read whole), so a
20 MB upload or a chunked response costs a buffer, not its size; a body of
known length up to 64 KiB goes in one write instead (fewer syscalls). A WebSocket
upgrade is handed to `eblocks.sidecar.websocket`. Failures before the
response starts are mesh errors (``connect``: the app refused; ``timeout``:
the caller's deadline passed); after it started the connection is cut, as
any proxy must.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from opentelemetry import trace

from eblocks.block.inbound import PEER
from eblocks.errors import ConnectError, MeshError, MeshTimeoutError
from eblocks.policies.target import SERVED_KEY, request_target
from eblocks.respond import error_response
from eblocks.sidecar.headers import deadline_of, to_app, to_caller
from eblocks.sidecar.websocket import is_upgrade, relay
from eblocks.telemetry.tracing import traceparent

__all__ = ["DEFAULT_IDLE", "HttpForwarder"]

log = logging.getLogger("eblocks.sidecar")

_CHUNK = 64 * 1024
_SMALL = 64 * 1024  # a body of known length up to this is sent in one write, not streamed


DEFAULT_IDLE = 30.0
"""Seconds an app may stay silent when neither the caller nor the spec bounds it."""


class HttpForwarder:
    """Forwards the requests of one proxy to ``http://host:port`` over a pooled session."""

    def __init__(
        self,
        block: str,
        host: str,
        port: int,
        *,
        connections: int = 256,
        idle: float = DEFAULT_IDLE,
    ) -> None:
        """``idle``: the longest the app may stay silent (no caller deadline bounds it)."""
        self.block = block
        self.base = f"http://{host}:{port}"
        self._idle = idle
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def application(self) -> web.Application:
        """The PM: one catch-all route; the session closes with the app."""
        app = web.Application()
        app[SERVED_KEY] = "sidecar"  # its policies match what the program is asked for
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_cleanup.append(self._close)
        return app

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30.0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        try:
            if is_upgrade(request.headers):
                return await relay(request, self.session(), self.base, _peer_of(request))
            return await self._relay_http(request)
        except MeshError as exc:
            return error_response(exc.with_origin(self.block))

    async def _relay_http(self, request: web.Request) -> web.StreamResponse:
        method, path = request_target(request.method, request.raw_path, request.headers)
        headers = to_app(
            request.headers,
            peer=_peer_of(request),
            remote=request.remote,
            scheme=_scheme(request),
        )
        span = trace.get_current_span()  # the block's server span, when tracing is on
        if span.get_span_context().is_valid:
            headers.update(traceparent(span))  # the app's spans become the proxy span's children
        # the caller's deadline bounds the whole exchange; without one, the app's
        # silence is bounded (a long stream that keeps moving is not cut)
        timeout = aiohttp.ClientTimeout(
            total=deadline_of(request.headers), sock_connect=5.0, sock_read=self._idle
        )
        body: bytes | aiohttp.StreamReader | None = None
        if request.body_exists:
            small = request.content_length is not None and request.content_length <= _SMALL
            body = await request.read() if small else request.content
        try:
            async with self.session().request(
                method,
                self.base + path,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                compress=False,
            ) as resp:
                return await _stream_back(request, resp)
        except TimeoutError as exc:
            raise MeshTimeoutError(
                f"the app did not answer within the caller's deadline "
                f"or {self._idle:g}s of silence",
                detail={"app": self.base},
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(
                f"the app at {self.base} refused the connection: {exc.os_error}",
                detail={"app": self.base},
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConnectError(
                f"the app at {self.base} failed: {type(exc).__name__}: {exc}",
                detail={"app": self.base},
            ) from exc


async def _stream_back(request: web.Request, resp: aiohttp.ClientResponse) -> web.StreamResponse:
    """Copy the app's response to the caller: chunk by chunk, or at once when it is small."""
    headers = to_caller(resp.headers)
    length = resp.headers.get("content-length")
    known = int(length) if length is not None and length.isdigit() else None
    if known is not None and known <= _SMALL and request.method != "HEAD":
        body = await resp.read()
        return web.Response(status=resp.status, reason=resp.reason, headers=headers, body=body)
    out = web.StreamResponse(status=resp.status, reason=resp.reason, headers=headers)
    if known is not None:
        out.content_length = known
    await out.prepare(request)
    try:
        async for chunk in resp.content.iter_chunked(_CHUNK):
            await out.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The status is sent: all a proxy can do is cut the connection.
        log.warning("the app's response broke off: %s", exc)
        raise ConnectionResetError("the app's response broke off") from exc
    await out.write_eof()
    return out


def _peer_of(request: web.Request) -> str | None:
    """The caller's verified SPIFFE ID (`Block` stores the `Peer` that `Auth.admit` gave)."""
    identity = getattr(request.get(PEER), "identity", None)
    return str(identity) if identity is not None else None


def _scheme(request: web.Request) -> str:
    transport = request.transport
    secure = transport is not None and transport.get_extra_info("ssl_object") is not None
    return "https" if secure else "http"
