"""HTTP/1.1 transport: pooled keep-alive connections through aiohttp.

With an ``ssl`` context (mTLS) the server's certificate must name the block
the call is for: an instance of another block answering on that address is
refused (`UnauthenticatedError`) before the reply is read.

The innermost `Send` of the client stack. aiohttp's exceptions are translated
here, at the boundary, into the mesh error tree.

With ``max_connections`` (target -> bound or None, read on every call; the
policies' ``limits.max_connections``), the calls to a bounded target go
through a pool of their own holding at most that many connections to all of
its instances; a call waits for a free connection (the client's
``max_pending`` bounds how many wait). A changed bound gets a new pool; the
old one serves its calls in flight and is closed with the transport.
"""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Callable
from types import TracebackType

import aiohttp

from eblocks._types import Call, Clock, SystemClock
from eblocks.errors import (
    ConnectError,
    IdentityError,
    MeshError,
    MeshTimeoutError,
    UnauthenticatedError,
)
from eblocks.message import DEADLINE_HEADER, Message
from eblocks.respond import error_from_response
from eblocks.security.identity import Identity
from eblocks.security.tls import peer_identity

__all__ = ["HttpTransport"]


class HttpTransport:
    """Sends calls to ``http://<endpoint>/`` over a shared connection pool."""

    def __init__(
        self,
        *,
        limit: int = 256,
        keepalive: float = 30.0,
        clock: Clock | None = None,
        ssl: _ssl.SSLContext | None = None,
        plain_targets: frozenset[str] = frozenset(),
        max_connections: Callable[[str], int | None] | None = None,
    ) -> None:
        self._ssl = ssl
        self._max_connections = max_connections
        self._bounded: dict[str, tuple[int, aiohttp.ClientSession]] = {}
        self._retired: list[aiohttp.ClientSession] = []
        self._plain = plain_targets
        self._limit = limit
        self._keepalive = keepalive
        self._clock = clock or SystemClock()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._new_session(self._limit)
        return self._session

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=limit, keepalive_timeout=self._keepalive, enable_cleanup_closed=False
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )

    def _session_for(self, target: str) -> aiohttp.ClientSession:
        """The shared pool, or the target's own when its connections are bounded."""
        bound = self._max_connections(target) if self._max_connections is not None else None
        if bound is None:
            return self._open()
        held = self._bounded.get(target)
        if held is not None and held[0] == bound and not held[1].closed:
            return held[1]
        if held is not None:
            self._retired.append(held[1])  # its calls in flight finish on it
        session = self._new_session(bound)
        self._bounded[target] = (bound, session)
        return session

    async def aclose(self) -> None:
        sessions = [*self._retired, *(session for _, session in self._bounded.values())]
        self._retired, self._bounded = [], {}
        if self._session is not None:
            sessions.append(self._session)
            self._session = None
        for session in sessions:
            await session.close()

    async def send(self, call: Call) -> Message:
        endpoint = call.endpoint
        if endpoint is None:
            raise ConnectError(f"no endpoint chosen for {call.target!r}")
        headers = dict(call.message.headers)
        if call.deadline is not None:
            remaining_ms = max(1, int((call.deadline - self._clock.monotonic()) * 1000))
            headers[DEADLINE_HEADER] = str(remaining_ms)
        ssl: _ssl.SSLContext | bool = True
        if self._ssl is not None and call.target not in self._plain:
            url, ssl = f"https://{endpoint.host}:{endpoint.port}/", self._ssl
        else:
            url = f"http://{endpoint.host}:{endpoint.port}/"
        try:
            async with self._session_for(call.target).post(
                url, data=call.message.body, headers=headers, ssl=ssl
            ) as resp:
                if ssl is self._ssl:
                    _check_server(resp, call.target, endpoint.address)
                body = await resp.read()
                if resp.status >= 300:
                    raise error_from_response(resp.status, resp.headers, body, call.target)
                return Message.from_wire(body, resp.headers)
        except MeshError:
            raise
        except aiohttp.ClientSSLError as exc:
            raise ConnectError(
                f"TLS handshake with {call.target!r} at {endpoint.address} failed: {exc}",
                detail={"target": call.target, "endpoint": endpoint.address, "tls": True},
            ) from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise ConnectError(
                f"cannot reach {call.target!r} at {endpoint.address}: {exc.__class__.__name__}",
                detail={"target": call.target, "endpoint": endpoint.address},
            ) from exc
        except TimeoutError as exc:
            raise MeshTimeoutError(f"{call.target!r} at {endpoint.address} timed out") from exc


_SERVERS: dict[str, Identity] = {}  # address -> identity last verified on a live connection


def _check_server(resp: aiohttp.ClientResponse, target: str, address: str) -> None:
    """Over mTLS the server must be an instance of the block we meant to call.

    A small reply may already have released its connection to the pool, so the
    TLS session is read through the response's protocol (aiohttp keeps it for
    the connection's life). If the server closed that connection already, the
    identity last verified for the address stands in; with none, a success
    fails closed (an error reply is relayed: it fails the call anyway).
    """
    conn = resp.connection
    protocol = conn.protocol if conn is not None else getattr(resp, "_protocol", None)
    transport = getattr(protocol, "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    try:
        if ssl_object is not None:
            identity = peer_identity(ssl_object)
            _SERVERS[address] = identity
        elif address in _SERVERS:
            identity = _SERVERS[address]
        elif resp.status >= 300:
            return  # an error reply on a connection the server closed: it is failing anyway
        else:
            raise IdentityError("the TLS session closed before its identity was read")
    except IdentityError as exc:
        raise UnauthenticatedError(
            f"{address} has no valid mesh identity: {exc}", origin=target
        ) from exc
    if identity.block != target:
        raise UnauthenticatedError(
            f"{address} is {identity}, not an instance of {target!r}",
            origin=target,
            detail={"endpoint": address, "server": str(identity)},
        )
