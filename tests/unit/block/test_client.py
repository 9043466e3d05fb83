"""MeshClient end to end in process: two real blocks, a pipeline a -> b."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from eblocks import (
    Block,
    Context,
    MeshClient,
    Message,
    NoEndpointsError,
    NoRouteError,
    UpstreamError,
)
from eblocks.message import IDEMPOTENCY_HEADER, REQUEST_ID_HEADER, SOURCE_HEADER
from eblocks.spec import parse_spec
from eblocks.testing import StaticResolver

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults:
  timeout: 10s
blocks:
  a: {handler: "tests:a"}
  b: {handler: "tests:b"}
patterns:
  pipe:
    pipeline: [a, b]
""",
    "unit.yaml",
)


@dataclass(frozen=True)
class Seen:
    body: bytes
    request_id: str
    idempotency_key: str | None
    pattern: str | None
    stage: int | None
    source: str | None
    has_deadline: bool


class Mesh:
    """Blocks a (upper-case) and b (append '!', or fail on 'fail') behind a StaticResolver."""

    def __init__(self) -> None:
        self.resolver = StaticResolver()
        self.seen: dict[str, list[Seen]] = {"a": [], "b": []}
        self.blocks = [
            Block.in_mesh(
                name, handler, app=None, client=MeshClient(SPEC, self.resolver, source=name)
            )
            for name, handler in (("a", self.handle_a), ("b", self.handle_b))
        ]

    def record(self, msg: Message, ctx: Context) -> None:
        self.seen[ctx.block].append(
            Seen(
                msg.body,
                ctx.request_id,
                ctx.idempotency_key,
                ctx.pattern,
                ctx.stage,
                msg.header(SOURCE_HEADER),
                ctx.deadline is not None,
            )
        )

    async def handle_a(self, msg: Message, ctx: Context) -> bytes:
        self.record(msg, ctx)
        return msg.body.upper()

    async def handle_b(self, msg: Message, ctx: Context) -> bytes:
        self.record(msg, ctx)
        if msg.body == b"FAIL":
            raise RuntimeError("b cannot take this")
        return msg.body + b"!"


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    mesh = Mesh()
    started: list[Block] = []
    try:
        for block in mesh.blocks:
            await block.start("127.0.0.1", 0)
            started.append(block)
            mesh.resolver.set(block.name, [f"127.0.0.1:{block.port}"])
        yield mesh
    finally:
        for block in started:
            await block.stop()


@pytest.fixture
async def client(mesh: Mesh) -> AsyncIterator[MeshClient]:
    async with MeshClient(SPEC, mesh.resolver) as client:
        yield client


async def test_pipeline_returns_the_last_stage_output(mesh: Mesh, client: MeshClient) -> None:
    msg = Message(b"hello", {IDEMPOTENCY_HEADER: "doc-1", REQUEST_ID_HEADER: "req-1"})
    reply = await client.call("pipe", msg)
    assert reply.body == b"HELLO!"
    assert [s.body for s in mesh.seen["a"]] == [b"hello"]
    assert [s.body for s in mesh.seen["b"]] == [b"HELLO"]


async def test_ids_propagate_to_the_second_hop(mesh: Mesh, client: MeshClient) -> None:
    msg = Message(b"x", {IDEMPOTENCY_HEADER: "doc-1", REQUEST_ID_HEADER: "req-1"})
    await client.call("pipe", msg)
    (a,), (b,) = mesh.seen["a"], mesh.seen["b"]
    assert (a.request_id, a.idempotency_key, a.pattern, a.stage) == ("req-1", "doc-1", "pipe", 0)
    assert (b.request_id, b.idempotency_key, b.pattern, b.stage) == ("req-1", "doc-1", "pipe", 1)
    assert b.source == "a"  # the second hop comes from block a, not from the caller
    assert a.has_deadline
    assert b.has_deadline


async def test_a_generated_request_id_is_the_same_on_every_hop(
    mesh: Mesh, client: MeshClient
) -> None:
    await client.call("pipe", Message(b"x"))
    (a,), (b,) = mesh.seen["a"], mesh.seen["b"]
    assert len(a.request_id) == 32
    assert b.request_id == a.request_id
    assert a.idempotency_key is None
    assert b.idempotency_key is None


async def test_calling_a_block_directly(mesh: Mesh, client: MeshClient) -> None:
    reply = await client.call("b", Message(b"direct"))
    assert reply.body == b"direct!"
    assert mesh.seen["a"] == []
    assert mesh.seen["b"][0].pattern is None


async def test_a_failing_stage_is_named_to_the_caller(mesh: Mesh, client: MeshClient) -> None:
    with pytest.raises(UpstreamError) as info:
        await client.call("pipe", Message(b"fail", {IDEMPOTENCY_HEADER: "doc-2"}))
    err = info.value
    assert (err.upstream_status, err.upstream_reason, err.origin) == (500, "handler", "b")
    assert (err.detail["pattern"], err.detail["stage"]) == ("pipe", 1)
    assert len(mesh.seen["b"]) == 1  # a handler error is not retried


async def test_unknown_target(client: MeshClient) -> None:
    with pytest.raises(NoRouteError, match=r"no block or pattern named 'c' \(known: a, b, pipe\)"):
        await client.call("c", Message(b"x"))


async def test_no_ready_instance(mesh: Mesh, client: MeshClient) -> None:
    mesh.resolver.set("b", [])
    with pytest.raises(NoEndpointsError, match="no ready instance of block 'b'"):
        await client.call("b", Message(b"x"))
