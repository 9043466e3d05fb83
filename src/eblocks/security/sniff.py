"""The mTLS port: each connection's first byte decides TLS or plaintext.

A TLS connection opens with a handshake record (content type 0x16); an HTTP
request opens with a method name. `SniffingSite` accepts each connection
itself, peeks at its first byte without consuming it, and hands the socket to
the aiohttp server with the TLS context — or, in ``permissive`` mode, without
it. In ``strict`` mode a plaintext connection is closed at once.

Accepting in Python (once per connection; keep-alive amortizes it) is what
lets the block see refusals that happen below HTTP: a plaintext connection
(counted through ``on_plaintext``, so an operator can see when permissive can
become strict) and a failed handshake — no client certificate, another CA, an
expired certificate — reported through ``on_refused(kind, peer, detail)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

from aiohttp import web

__all__ = ["SniffingSite"]

log = logging.getLogger("eblocks.security.sniff")

_TLS_HANDSHAKE = 0x16
_FIRST_BYTE_TIMEOUT = 10.0  # a connection that sends nothing is closed after this


class SniffingSite:
    """Serve ``runner`` on ``sock``, TLS or plaintext per connection."""

    def __init__(
        self,
        runner: web.AppRunner,
        sock: socket.socket,
        ctx: ssl.SSLContext,
        on_plaintext: Callable[[], None] | None,
        *,
        permissive: bool = True,
        on_refused: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self._runner = runner
        self._sock = sock
        self._ctx = ctx
        self._on_plaintext = on_plaintext
        self._permissive = permissive
        self._on_refused = on_refused
        self._accepting: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._accepting = asyncio.create_task(self._accept())

    async def stop(self) -> None:
        """Stop accepting and close the socket; served connections drain with the runner."""
        for task in (self._accepting, *self._pending):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._accepting, *self._pending) if t is not None),
            return_exceptions=True,
        )
        self._sock.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            task = asyncio.create_task(self._route(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _route(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        peer = _peer(conn)
        try:
            first = await asyncio.wait_for(_peek(loop, conn), _FIRST_BYTE_TIMEOUT)
            if not first:
                conn.close()
                return
            tls = first[0] == _TLS_HANDSHAKE
            if not tls:
                if not self._permissive:
                    self._refused("plaintext", peer, "plaintext to an mTLS strict port")
                    conn.close()
                    return
                if self._on_plaintext is not None:
                    self._on_plaintext()
            server = self._runner.server
            assert server is not None  # the runner is set up before the site starts
            await loop.connect_accepted_socket(server, conn, ssl=self._ctx if tls else None)
        except ssl.SSLError as exc:
            detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            self._refused("handshake", peer, str(detail))
            conn.close()
        except (OSError, TimeoutError) as exc:
            log.debug("connection from %s dropped before serving: %s", peer, exc)
            conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise

    def _refused(self, kind: str, peer: str, detail: str) -> None:
        if self._on_refused is not None:
            self._on_refused(kind, peer, detail)


def _peer(conn: socket.socket) -> str:
    try:
        host, port, *_ = conn.getpeername()
    except OSError:
        return "?"
    return f"{host}:{port}"


async def _peek(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(conn.fileno(), ready)
    try:
        await readable
    finally:
        loop.remove_reader(conn.fileno())
    with contextlib.suppress(BlockingIOError):
        return conn.recv(1, socket.MSG_PEEK)
    return b"x"  # spurious wake-up: treat as plaintext and let the HTTP parser decide
