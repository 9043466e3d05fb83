"""A lean HTTP/1.1 client for the mesh's own calls: keep-alive connections in a pool.

Why not aiohttp's `ClientSession` here (it serves everything else): on the
hot path of a mesh call its generality (cookies, redirects, proxies, trace
hooks, URL parsing, per-request timeout objects) cost about 100 µs of CPU per
request on this project's machine, more than every Eblocks layer together,
and the client process is what bounds a mesh's throughput (docs/decisions.md,
D53). A mesh call is always the same shape: ``POST /`` with a body and a
handful of headers, to an endpoint the balancer chose, answered by a block.

What is ours: the request head, the pool and the connection protocol.
What is not: parsing the response (chunked, content-length, keep-alive
semantics) is httptools', the llhttp parser that uvicorn uses; TLS is the
event loop's.

- `Connection` is one TCP (or TLS) connection: it writes one request at a time
  and resolves a future with the parsed reply. A reply the server ends with
  ``Connection: close``, a reply cut short, a parse error or a cancelled call
  (its reply would arrive on a connection somebody else reuses) close it.
- `Slots` bounds the connections in use at once for a group of calls (the
  whole transport, or one target's ``max_connections``); a call beyond the
  bound waits, first come first served, and a cancelled waiter takes no slot.
- `Pool` keeps the idle connections per address; a connection the server has
  closed meanwhile (its FIN already read by the loop) is never reused, and a
  connection idle for longer than ``keepalive`` is closed when next met.

Errors are the standard library's: `OSError` (connect refused, reset, lost),
`TimeoutError` (connect), `ProtocolError` (a reply that is not HTTP/1.1);
`HttpTransport` translates them into the mesh's error tree.
"""

from __future__ import annotations

import asyncio
import collections
import ssl as _ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from eblocks.security.identity import Identity

__all__ = ["Connection", "Pool", "ProtocolError", "Reply", "Slots", "request_head"]

_CONNECT_TIMEOUT = 5.0
_MAX_HEAD = 64 * 1024  # bytes of response head accepted before the reply counts as malformed
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_checked_names: set[str] = set()  # header names seen valid (a handful per process)


class ProtocolError(OSError):
    """The server's reply is not valid HTTP/1.1 (or a request header could not be sent)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A parsed response: status, headers (names lower-cased, last value wins) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def request_head(authority: str, headers: Mapping[str, str], length: int) -> bytes:
    """``POST /`` with ``headers``: names must be tokens, values may not break the framing."""
    lines = [f"POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {length}\r\n"]
    for name, value in headers.items():
        if name not in _checked_names:
            _check_name(name)
        if "\n" in value or "\r" in value:
            raise ProtocolError(f"header {name!r}: a value may not contain CR or LF")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


def _check_name(name: str) -> None:
    raw = name.encode("utf-8", "replace")
    if not raw or any(byte not in _TOKEN for byte in raw):
        raise ProtocolError(f"header name {name!r} is not an HTTP token")
    if len(_checked_names) < 4096:
        _checked_names.add(name)


class Connection(asyncio.Protocol):
    """One keep-alive connection; `request` sends a request and waits for its reply."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[Connection], None]
    ) -> None:
        self._loop = loop
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._head_bytes = 0
        self._in_head = False
        self._status = 0
        self._drain: asyncio.Future[None] | None = None
        self.reusable = True  # False once closed, failed or told to close
        self.idle_since = 0.0
        self.identity: Identity | None = None  # the peer's mesh identity, read once (mTLS)

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the server switched protocols"))
            return
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP response: {exc}"))
            return
        if self._in_head:  # still no end of head: bound what a server can make us hold
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD:
                self._fail(ProtocolError(f"response head over {_MAX_HEAD} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._on_lost(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if not self._in_head and _delimited_by_close(self._headers):
                self.on_message_complete()  # a body that runs until the connection ends
            else:
                lost = exc or ConnectionResetError("the server closed the connection")
                waiter.set_exception(lost if isinstance(lost, OSError) else OSError(str(lost)))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # --- httptools callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim 1xx reply: the real one follows
            self._headers, self._chunks, self._in_head = {}, [], True
            return
        if not self._parser.should_keep_alive():
            self.reusable = False
        waiter, self._waiter = self._waiter, None
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        if waiter is not None and not waiter.done():
            waiter.set_result(Reply(self._status, self._headers, body))
        else:  # a reply nobody asked for: the connection can't be trusted any more
            self.close()

    # --- use --------------------------------------------------------------------------
    async def request(self, head: bytes, body: bytes) -> Reply:
        """Send one request and wait for its whole reply (callers bound the wait)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        waiter: asyncio.Future[Reply] = self._loop.create_future()
        self._waiter, self._headers, self._chunks = waiter, {}, []
        self._in_head, self._head_bytes = True, 0
        if len(body) <= 16384:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        if self._drain is not None and not self._drain.done():
            await self._drain
        return await waiter

    def _fail(self, exc: OSError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()  # nothing of ours is left to flush


def _delimited_by_close(headers: Mapping[str, str]) -> bool:
    return "content-length" not in headers and "transfer-encoding" not in headers


class Slots:
    """At most ``limit`` connections in use at once; waiters are served in order."""

    __slots__ = ("_waiters", "in_use", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def take(self) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # `give` counted the slot for us before waking us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # woken and cancelled at once: pass the slot on
            else:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter: in_use unchanged
                return
        self.in_use -= 1


class Pool:
    """Idle connections by address (and TLS or not), shared by every group of calls."""

    def __init__(self, keepalive: float) -> None:
        self._keepalive = keepalive
        self._idle: dict[tuple[str, int, bool], list[Connection]] = {}
        self._where: dict[Connection, tuple[str, int, bool]] = {}  # idle ones: their list
        self._busy: set[Connection] = set()
        self.closed = False

    @property
    def idle(self) -> int:
        """How many idle connections the pool holds."""
        return len(self._where)

    async def acquire(self, host: str, port: int, ssl: _ssl.SSLContext | None) -> Connection:
        """An idle connection to ``host:port`` that is still open, else a new one."""
        if self.closed:
            raise ConnectionResetError("the transport is closed")
        idle = self._idle.get((host, port, ssl is not None))
        if idle:
            oldest = time.monotonic() - self._keepalive
            while idle:
                conn = idle.pop()
                self._where.pop(conn, None)
                if conn.reusable and conn.idle_since > oldest:
                    self._busy.add(conn)
                    return conn
                conn.close()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(_CONNECT_TIMEOUT):
            _, conn = await loop.create_connection(
                lambda: Connection(loop, self._lost),
                host,
                port,
                ssl=ssl,
                server_hostname=host if ssl is not None else None,
            )
        self._busy.add(conn)
        return conn

    def release(self, conn: Connection, host: str, port: int, tls: bool) -> None:
        """Back to the idle list when it can carry another request; else closed."""
        self._busy.discard(conn)
        if conn.reusable and not self.closed:
            conn.idle_since = time.monotonic()
            key = (host, port, tls)
            self._idle.setdefault(key, []).append(conn)
            self._where[conn] = key
        else:
            conn.close()

    def _lost(self, conn: Connection) -> None:
        """An idle connection the server closed leaves the pool at once (no dead entries)."""
        key = self._where.pop(conn, None)
        if key is not None:
            idle = self._idle[key]
            idle.remove(conn)
            if not idle:
                del self._idle[key]

    def close(self) -> None:
        """Close every connection, idle or in use (the calls in flight fail)."""
        self.closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._where.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()
