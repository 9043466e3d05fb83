"""mTLS ``permissive``: TLS and plaintext on one port, told apart by the first byte.

A TLS connection opens with a handshake record (content type 0x16); an HTTP
request opens with a method name. `SniffingSite` accepts each connection
itself, peeks at its first byte without consuming it, and hands the socket to
the aiohttp server with or without the TLS context. Plaintext connections are
counted through ``on_plaintext`` (the ``plaintext_connections`` metric), so an
operator can see when it is safe to switch to ``strict``.
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
    ) -> None:
        self._runner = runner
        self._sock = sock
        self._ctx = ctx
        self._on_plaintext = on_plaintext
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
        try:
            first = await asyncio.wait_for(_peek(loop, conn), _FIRST_BYTE_TIMEOUT)
            if not first:
                conn.close()
                return
            tls = first[0] == _TLS_HANDSHAKE
            if not tls and self._on_plaintext is not None:
                self._on_plaintext()
            server = self._runner.server
            assert server is not None  # the runner is set up before the site starts
            await loop.connect_accepted_socket(server, conn, ssl=self._ctx if tls else None)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.debug("connection dropped before serving: %s", exc)
            conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise


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
