"""The sockets of one instance: the PM port and the admin port (aiohttp).

The app is kept apart from its sockets, as aiohttp does: `Listener` binds a
socket itself (so port 0 yields the real port and "address in use" is named),
serves an `web.Application` on it, and on `close()` stops accepting, closes
idle keep-alive connections and waits for in-flight requests up to ``drain``.

With an ``ssl`` context connections are accepted by `eblocks.security.sniff`:
TLS only (mTLS ``strict``) or, with ``permissive``, TLS and plaintext on the
same port; refused connections are reported through ``on_refused``.
"""

from __future__ import annotations

import errno
import socket
import ssl as _ssl
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from eblocks.errors import PortInUseError
from eblocks.security.sniff import SniffingSite

__all__ = ["IDLE", "Listener", "PmSocket", "any_address", "bind_socket"]


class PmSocket(Protocol):
    """What a block needs of its PM socket: `Listener`, or the sidecar's TCP listener."""

    port: int

    async def start(self, host: str, port: int) -> int: ...

    async def close(self) -> None: ...


IDLE = 75.0
"""Seconds a connection may stay idle (before its first request, between requests) before
the server closes it; aiohttp's default is an hour, which lets clients that connect and
send nothing hold the port (nginx's keepalive_timeout is 75 s too)."""


class Listener:
    """One aiohttp application served on one bound socket."""

    def __init__(
        self,
        app: web.Application,
        *,
        block: str,
        drain: float,
        ssl: _ssl.SSLContext | None = None,
        permissive: bool = False,
        on_plaintext: Callable[[], None] | None = None,
        on_refused: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self._app = app
        self._block = block
        self._ssl = ssl
        self._permissive = permissive
        self._on_plaintext = on_plaintext
        self._on_refused = on_refused
        self._sniffer: SniffingSite | None = None
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=drain,
            keepalive_timeout=IDLE,
        )
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Bind and serve; returns the bound port."""
        sock = bind_socket(self._block, host, port)
        self.host, self.port = host, sock.getsockname()[1]
        await self._runner.setup()
        if self._ssl is not None:
            self._sniffer = SniffingSite(
                self._runner,
                sock,
                self._ssl,
                self._on_plaintext,
                permissive=self._permissive,
                on_refused=self._on_refused,
            )
            self._sniffer.start()
        else:
            await web.SockSite(self._runner, sock).start()
        return self.port

    async def close(self) -> None:
        """Stop accepting, then drain in-flight requests (bounded by ``drain``)."""
        if self._sniffer is not None:
            await self._sniffer.stop()
        await self._runner.cleanup()


def any_address(host: str) -> str:
    """The wildcard address of ``host``'s family: ``::`` for IPv6 (dual-stack), else ``0.0.0.0``."""
    return "::" if ":" in host else "0.0.0.0"


def bind_socket(block: str, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if host == "::":  # every address: IPv4 too, whatever the system's default
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(block, host, port) from exc
        raise
    sock.listen(1024)
    sock.setblocking(False)
    return sock
