"""The transport's pool per target: at most ``max_connections`` connections to its instances."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from eblocks._types import Call, Endpoint
from eblocks.message import Message
from eblocks.transport import HttpTransport


class Server:
    """A loopback server that counts the connections its requests came on."""

    def __init__(self) -> None:
        self.peers: set[tuple[str, int]] = set()
        self.busy = 0
        self.most_busy = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        host, port = request.transport.get_extra_info("peername")[:2]
        self.peers.add((host, port))
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        await asyncio.sleep(0.01)  # keep requests overlapping
        self.busy -= 1
        return web.Response(body=b"ok")


@pytest.fixture
async def server(serve_app: Callable[[web.Application], Awaitable[int]]) -> Server:
    srv = Server()
    app = web.Application()
    app.router.add_post("/", srv.handle)
    srv.port = await serve_app(app)
    return srv


async def burst(transport: HttpTransport, port: int, target: str, n: int) -> None:
    endpoint = Endpoint(target, f"{target}-0", "127.0.0.1", port)
    calls = [transport.send(Call(target, Message(b"x"), endpoint=endpoint)) for _ in range(n)]
    replies = await asyncio.gather(*calls)
    assert [r.body for r in replies] == [b"ok"] * n


async def test_a_bounded_target_uses_at_most_its_connections(server: Server) -> None:
    bounds = {"small": 2}
    async with HttpTransport(max_connections=bounds.get) as transport:
        await burst(transport, server.port, "small", 20)
        assert len(server.peers) <= 2
        assert server.most_busy <= 2
        server.peers.clear()
        server.most_busy = 0
        await burst(transport, server.port, "big", 20)  # no bound: the shared pool
        assert server.most_busy > 2
        server.peers.clear()
        bounds["small"] = 1  # a new bound (eblocks apply): a new pool
        await burst(transport, server.port, "small", 10)
        assert len(server.peers) == 1
