"""Opaque TCP: bytes both ways, for protocols the proxy cannot read (PostgreSQL, Redis...).

Server-speaks-first protocols cannot wait for a request line, so the proxy
never reads one: a connection is authorized once, when it opens, then spliced::

    client --> 127.0.0.1:<up port> (TcpUpstream, in the client's proxy)
           --(mTLS, the server's SVID must name <target>)--> <target> proxy PM (TcpPort)
           --(identity checked, authorized as CONNECT /)--> 127.0.0.1:<app port>

With the mesh's security off both hops are plaintext. A TCP port needs a
client certificate whatever the block's mTLS mode except ``disable`` (there is
no plaintext to sniff for). Each connection counts as one request of route
``tcp`` in the block's metrics and access log: status 200 when it was spliced,
403 when refused, 502 when the far side could not be reached, 499 when the
drain ran out and cut it; the bytes are
its sizes and its duration the connection's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl as _ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from eblocks._types import Endpoint
from eblocks.block.server import bind_socket
from eblocks.errors import IdentityError
from eblocks.telemetry import Telemetry
from eblocks.telemetry.inbound import CLIENT_CLOSED

if TYPE_CHECKING:
    from eblocks.security import Auth

__all__ = ["ROUTE", "TcpPort", "TcpUpstream", "splice"]

log = logging.getLogger("eblocks.sidecar")
audit = logging.getLogger("eblocks.audit")

ROUTE = "tcp"
_CHUNK = 64 * 1024
_CONNECT_TIMEOUT = 5.0


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> tuple[int, int]:
    """Copy a -> b and b -> a until both directions end; (bytes a -> b, bytes b -> a).

    A side that reaches EOF half-closes the other (``write_eof``) where the
    transport can (plain TCP), so request-then-close protocols still get their
    answer; a TLS hop cannot half-close, so there EOF closes the connection.
    """
    forward, backward = await asyncio.gather(
        _copy(a_reader, b_writer), _copy(b_reader, a_writer), return_exceptions=True
    )
    for writer in (a_writer, b_writer):
        writer.close()
    for writer in (a_writer, b_writer):
        with contextlib.suppress(ConnectionError, _ssl.SSLError, OSError):
            await writer.wait_closed()
    return (
        forward if isinstance(forward, int) else 0,
        backward if isinstance(backward, int) else 0,
    )


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    total = 0
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            total += len(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:  # TLS has no half-close: the whole connection ends with this direction
            writer.close()
    except (ConnectionError, _ssl.SSLError, OSError):
        writer.close()  # one side broke: the other direction ends with it
    return total


_Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _Listener:
    """A listening socket and its open connections, so closing it waits for them (bounded)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(
        self, serve: _Serve, sock: socket.socket, ssl: _ssl.SSLContext | None = None
    ) -> int:
        self.server = await asyncio.start_server(
            serve, sock=sock, ssl=ssl, ssl_handshake_timeout=5.0 if ssl else None
        )
        port: int = sock.getsockname()[1]
        return port

    def track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """Stop accepting, let open connections finish within the grace, then cut them."""
        if self.server is not None:
            self.server.close()
        if self.tasks:
            _, late = await asyncio.wait(set(self.tasks), timeout=self.grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)


class TcpPort:
    """The PM socket of a ``--tcp`` proxy: accepts (mTLS), authorizes, splices to the app.

    A `eblocks.block.server.PmSocket`: the block starts and drains it.
    """

    def __init__(
        self,
        block: str,
        app: tuple[str, int],
        telemetry: Telemetry,
        *,
        auth: Auth | None,
        drain: float,
        on_count: Callable[[int], None] | None = None,
    ) -> None:
        self.block = block
        self.app = app
        self.port = 0
        self._tel = telemetry
        self._auth = auth
        self._ssl = auth.files.server_ssl() if auth is not None and auth.mode != "disable" else None
        self._open = _Listener(drain)
        self.on_count = on_count

    async def start(self, host: str, port: int) -> int:
        self.port = await self._open.start(
            self._serve, bind_socket(self.block, host, port), self._ssl
        )
        return self.port

    async def close(self) -> None:
        """Stop accepting, let open connections finish within the drain, then cut them."""
        await self._open.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.track()
        self._count(+1)
        began, status, sizes = time.monotonic(), 200, (0, 0)
        peer = "external"
        try:
            peer, allowed = self._admit(writer)
            if not allowed:
                status = 403
                return
            try:
                app_reader, app_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.app), _CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                status = 502
                log.warning("tcp: the app at %s:%d is unreachable: %s", *self.app, exc)
                return
            sizes = await splice(reader, writer, app_reader, app_writer)
        except asyncio.CancelledError:
            status = CLIENT_CLOSED  # cut by the end of the drain
            raise
        finally:
            if status != 200:
                writer.close()
            self._count(-1)
            _record(self._tel, True, peer, status, time.monotonic() - began, sizes)

    def _admit(self, writer: asyncio.StreamWriter) -> tuple[str, bool]:
        """The caller's block (a metrics label) and whether it may connect."""
        auth = self._auth
        ssl_object = writer.get_extra_info("ssl_object")
        if auth is None or ssl_object is None:
            return "external", True
        from eblocks.security.policy import RequestFacts
        from eblocks.security.tls import peer_identity

        try:
            identity = peer_identity(ssl_object)
        except IdentityError as exc:
            auth.counters["unauthenticated"] += 1
            audit.warning("unauthenticated tcp connection at %s: %s", self.block, exc)
            return "external", False
        mine = auth.identity
        if (identity.trust_domain, identity.mesh) != (mine.trust_domain, mine.mesh):
            auth.counters["unauthenticated"] += 1
            audit.warning("tcp peer %s is outside mesh %s at %s", identity, mine.mesh, self.block)
            return "external", False
        label = self._tel.peer(identity.block)
        decision = auth.policy.authorize(
            RequestFacts(target=self.block, source=identity, method="CONNECT", path="/")
        )
        if not decision.allowed:
            auth.counters["forbidden"] += 1
            audit.warning(
                "deny %s -> %s tcp rule=%s: %s",
                identity,
                self.block,
                decision.rule,
                decision.reason,
            )
        return label, decision.allowed

    def _count(self, delta: int) -> None:
        if self.on_count is not None:
            self.on_count(delta)


class TcpUpstream:
    """``127.0.0.1:port`` whose connections are tunnelled to an instance of ``target``."""

    def __init__(
        self,
        source: str,
        target: str,
        endpoints: Callable[[str], Sequence[Endpoint]],
        telemetry: Telemetry,
        *,
        auth: Auth | None,
        drain: float,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.port = 0
        self._endpoints = endpoints
        self._tel = telemetry
        self._auth = auth
        self._ssl = (
            auth.client_ssl() if auth is not None and target not in auth.plain_targets else None
        )
        self._rng = rng or random.Random()
        self._open = _Listener(drain)

    async def start(self, port: int, host: str = "127.0.0.1") -> int:
        sock = bind_socket(f"{self.source} upstream {self.target}", host, port)
        self.port = await self._open.start(self._serve, sock)
        return self.port

    async def close(self) -> None:
        await self._open.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.track()
        began, status, sizes = time.monotonic(), 200, (0, 0)
        try:
            far = await self._connect()
            if far is None:
                status = 502
                writer.close()
                return
            sizes = await splice(reader, writer, *far)
        finally:
            _record(self._tel, False, self.target, status, time.monotonic() - began, sizes)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A verified connection to one ready instance of the target, trying up to three."""
        candidates = list(self._endpoints(self.target))
        self._rng.shuffle(candidates)
        for endpoint in candidates[:3]:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        endpoint.host,
                        endpoint.port,
                        ssl=self._ssl,
                        server_hostname="" if self._ssl is not None else None,
                    ),
                    _CONNECT_TIMEOUT,
                )
            except (OSError, TimeoutError, _ssl.SSLError) as exc:
                log.warning("tcp: %s at %s: %s", self.target, endpoint.address, exc)
                continue
            if self._verified(writer, endpoint):
                return reader, writer
            writer.close()
        if not candidates:
            log.warning("tcp: no ready instance of %s", self.target)
        return None

    def _verified(self, writer: asyncio.StreamWriter, endpoint: Endpoint) -> bool:
        """Over mTLS the server must be an instance of the target (as `HttpTransport` checks)."""
        if self._ssl is None:
            return True
        from eblocks.security.tls import peer_identity

        try:
            identity = peer_identity(writer.get_extra_info("ssl_object"))
        except IdentityError as exc:
            log.warning("tcp: %s has no valid mesh identity: %s", endpoint.address, exc)
            return False
        if identity.block != self.target:
            log.warning("tcp: %s is %s, not %s", endpoint.address, identity, self.target)
            return False
        return True


def _record(
    tel: Telemetry, inbound: bool, peer: str, status: int, took: float, sizes: tuple[int, int]
) -> None:
    """One connection as one request of route ``tcp`` (metrics, access log, tap)."""
    if not tel.requests:  # telemetry.metrics: false
        return
    nin, nout = sizes
    table = tel.inbound if inbound else tel.outbound
    table.get(peer, ROUTE).add(status, took, nin, nout, tel.clock.monotonic())
    if tel.sinks:
        tel.emit(inbound, peer, ROUTE, status, took, nin, nout, 0, None, None, None)
