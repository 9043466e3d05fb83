"""HTTP/1.1 transport: pooled keep-alive connections through aiohttp.

With an ``ssl`` context (mTLS) the server's certificate must name the block
the call is for: an instance of another block answering on that address is
refused (`UnauthenticatedError`) before the reply is read.

The innermost `Send` of the client stack. aiohttp's exceptions are translated
here, at the boundary, into the mesh error tree.
"""

from __future__ import annotations

import ssl as _ssl
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
    ) -> None:
        self._ssl = ssl
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
            connector = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=self._keepalive, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
            async with self._open().post(
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
