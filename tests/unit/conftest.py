"""Shared fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiohttp import web

from eblocks import Block, MeshClient
from eblocks.spec import MeshSpec
from eblocks.testing import StaticResolver


class LocalMesh:
    """Real blocks on loopback, in this process, found through a `StaticResolver`."""

    def __init__(self, spec: MeshSpec) -> None:
        self.spec = spec
        self.resolver = StaticResolver()
        self.blocks: dict[str, list[Block]] = {}
        self.client = MeshClient(spec, self.resolver)

    async def start(self, block: str, handler: Callable[..., Any], replicas: int = 1) -> None:
        for index in range(replicas):
            instance = f"{block}-{index}"
            client = MeshClient(self.spec, self.resolver, source=block)
            started = Block.in_mesh(block, handler, app=None, client=client, instance=instance)
            await started.start("127.0.0.1", 0)
            self.blocks.setdefault(block, []).append(started)
        self.publish(block)

    def publish(self, block: str, extra: list[str] | None = None) -> None:
        """Tell the resolver about the instances of ``block`` (and ``extra`` addresses first)."""
        ports = [f"127.0.0.1:{b.port}" for b in self.blocks.get(block, [])]
        self.resolver.set(block, [*(extra or []), *ports])

    async def close(self) -> None:
        await self.client.aclose()
        for blocks in self.blocks.values():
            for block in blocks:
                await block.stop()


@pytest.fixture
async def local_mesh() -> AsyncIterator[Callable[[MeshSpec, Mapping[str, Any]], Any]]:
    """``await local_mesh(spec, {block: handler | (handler, replicas)})`` -> a started mesh."""
    meshes: list[LocalMesh] = []

    async def make(spec: MeshSpec, handlers: Mapping[str, Any]) -> LocalMesh:
        mesh = LocalMesh(spec)
        meshes.append(mesh)
        for name, entry in handlers.items():
            handler, replicas = entry if isinstance(entry, tuple) else (entry, 1)
            await mesh.start(name, handler, replicas)
        return mesh

    yield make
    for mesh in meshes:
        await mesh.close()


ServeApp = Callable[[web.Application], Awaitable[int]]
"""`serve_app(app)`: serve ``app`` on a free loopback port and return the port."""


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Serve aiohttp applications on loopback for one test; all are cleaned up after it."""
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application) -> int:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port: int = runner.addresses[0][1]
        return port

    yield serve
    for runner in runners:
        await runner.cleanup()
