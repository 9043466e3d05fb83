"""HTTP/1.1 transport: pooled keep-alive connections (`eblocks.transport.h1`).

With an ``ssl`` context (mTLS) the server's certificate must name the block
the call is for: an instance of another block answering on that address is
refused (`UnauthenticatedError`) before the reply is used. The identity is
read once per connection, from its TLS session.

The innermost `Send` of the client stack. The connection's exceptions are
translated here, at the boundary, into the mesh error tree.

``limit`` bounds the connections in use at once over all targets. With
``max_connections`` (target -> bound or None, read on every call; the
policies' ``limits.max_connections``), the calls to a bounded target instead
take one of at most that many connections to all of its instances; a call
waits for a free one (the client's ``max_pending`` bounds how many wait). A
changed bound starts a new count; the calls holding the old one finish on it.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Callable
from types import TracebackType

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
from eblocks.security.tls import peer_identity
from eblocks.transport.h1 import Connection, Pool, ProtocolError, Slots, request_head

__all__ = ["HttpTransport"]


class HttpTransport:
    """Sends calls to ``http://<endpoint>/`` (``https`` with mTLS) over a shared pool."""

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
        self._plain = plain_targets
        self._max_connections = max_connections
        self._clock = clock or SystemClock()
        self._pool = Pool(keepalive)
        self._slots = Slots(limit)
        self._bounded: dict[str, Slots] = {}

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _slots_for(self, target: str) -> Slots:
        """The shared count, or the target's own when its connections are bounded."""
        bound = self._max_connections(target) if self._max_connections is not None else None
        if bound is None:
            return self._slots
        slots = self._bounded.get(target)
        if slots is None or slots.limit != bound:
            slots = self._bounded[target] = Slots(bound)
        return slots

    async def aclose(self) -> None:
        self._pool.close()
        await asyncio.sleep(0)  # let the loop deliver connection_lost to the closed ones

    async def send(self, call: Call) -> Message:
        endpoint = call.endpoint
        if endpoint is None:
            raise ConnectError(f"no endpoint chosen for {call.target!r}")
        headers = call.message.headers
        if call.deadline is not None:
            remaining_ms = max(1, int((call.deadline - self._clock.monotonic()) * 1000))
            headers = {**headers, DEADLINE_HEADER: str(remaining_ms)}
        ssl = self._ssl if self._ssl is not None and call.target not in self._plain else None
        host, port = endpoint.host, endpoint.port
        body = call.message.body
        try:
            head = request_head(endpoint.address, headers, len(body))
            slots = self._slots_for(call.target)
            await slots.take()
            try:
                conn = await self._pool.acquire(host, port, ssl)
                try:
                    reply = await conn.request(head, body)
                    if ssl is not None:
                        _check_server(conn, reply.status, call.target, endpoint.address)
                except BaseException:
                    conn.close()  # its reply, if any, must not reach the next call
                    raise
                finally:
                    self._pool.release(conn, host, port, ssl is not None)
            finally:
                slots.give()
        except MeshError:
            raise
        except _ssl.SSLError as exc:
            raise ConnectError(
                f"TLS handshake with {call.target!r} at {endpoint.address} failed: {exc}",
                detail={"target": call.target, "endpoint": endpoint.address, "tls": True},
            ) from exc
        except TimeoutError as exc:
            raise MeshTimeoutError(
                f"connecting to {call.target!r} at {endpoint.address} timed out"
            ) from exc
        except ProtocolError as exc:
            raise ConnectError(
                f"bad exchange with {call.target!r} at {endpoint.address}: {exc}",
                detail={"target": call.target, "endpoint": endpoint.address},
            ) from exc
        except OSError as exc:
            message = f"cannot reach {call.target!r} at {endpoint.address}: {type(exc).__name__}"
            if ssl is None and isinstance(exc, ConnectionResetError):
                message += _PLAINTEXT_RESET
            raise ConnectError(
                message, detail={"target": call.target, "endpoint": endpoint.address}
            ) from exc
        if reply.status >= 300:
            raise error_from_response(reply.status, reply.headers, reply.body, call.target)
        return Message.from_wire(reply.body, reply.headers)


_PLAINTEXT_RESET = (
    " (this client spoke plaintext; a block with mTLS on resets such connections: give the "
    "client an identity, e.g. MeshClient(..., auth=Auth.for_cli(spec, state_dir)))"
)


def _check_server(conn: Connection, status: int, target: str, address: str) -> None:
    """Over mTLS the server must be an instance of the block we meant to call.

    The identity is read from the connection's TLS session on its first reply
    and kept with the connection (a certificate does not change mid-session).
    """
    identity = conn.identity
    if identity is None:
        transport = conn.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        try:
            if ssl_object is None:
                if status >= 300:
                    return  # an error reply on a connection already gone: it fails anyway
                raise IdentityError("the TLS session closed before its identity was read")
            identity = conn.identity = peer_identity(ssl_object)
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
