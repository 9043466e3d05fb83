"""The monitoring API of real blocks in process: /metrics hooks, retries, routes, config, tap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from eblocks import Block, Context, MeshClient, Message
from eblocks.message import IDEMPOTENCY_HEADER
from eblocks.policies import PolicyState, digest_of
from eblocks.spec import parse_spec
from eblocks.spec.policies import Policies
from eblocks.telemetry import Telemetry
from eblocks.telemetry.admin import REDACTED
from eblocks.telemetry.tap import MAX_LIMIT, MAX_SECONDS, Tap
from eblocks.testing import StaticResolver
from eblocks.workload import relay

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults:
  timeout: 10s
  retries: {attempts: 3, backoff: 10ms}
discovery: {mode: gossip, key: "0123456789abcdef-secret"}
blocks:
  boss: {}
  w: {handler: "tests:w", env: {API_TOKEN: hunter2, COLOUR: blue}}
  front: {handler: "tests:front"}
  shop: {app: "tests:shop"}
patterns:
  pool:
    manager-worker: {manager: boss, worker: w, balancer: round_robin, concurrency: 1,
                     queue: {max: 4}, attempts: 3}
""",
    "unit.yaml",
)


class Mesh:
    def __init__(self) -> None:
        self.resolver = StaticResolver()
        self.blocks: list[Block] = []
        self.session = aiohttp.ClientSession()

    async def start(self, name: str, handler: Any = None, *, app: Any = None) -> Block:
        index = sum(b.name == name for b in self.blocks)
        instance = f"{name}-{index}"
        client = MeshClient(SPEC, self.resolver, source=name, telemetry=Telemetry(name, instance))
        block = Block.in_mesh(name, handler, app=app, client=client, instance=instance)
        await block.start("127.0.0.1", 0)
        self.blocks.append(block)
        self.resolver.set(name, [f"127.0.0.1:{b.port}" for b in self.blocks if b.name == name])
        return block

    async def get(self, block: Block, path: str) -> bytes:
        async with self.session.get(f"http://127.0.0.1:{block.admin_port}{path}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.read()

    async def metrics(self, block: Block) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = (await self.get(block, "/metrics")).decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def close(self) -> None:
        await self.session.close()
        for block in self.blocks:
            await block.stop()


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    made = Mesh()
    yield made
    await made.close()


def value(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in metrics.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_pool_and_queue_gauges_of_a_manager(mesh: Mesh) -> None:
    gate = asyncio.Event()
    started: list[bytes] = []

    async def work(msg: Message) -> bytes:
        started.append(msg.body)
        await gate.wait()
        return msg.body

    boss = await mesh.start("boss", relay)
    await mesh.start("w", work)
    await mesh.start("w", work)
    caller = MeshClient(SPEC, mesh.resolver)
    tasks = [asyncio.create_task(caller.call("pool", Message(b"t%d" % i))) for i in range(3)]
    await _until(lambda: len(started) == 2)
    metrics = await mesh.metrics(boss)
    assert value(metrics, "eblocks_pattern_workers", pattern="pool") == 2
    assert value(metrics, "eblocks_pattern_capacity", pattern="pool") == 2
    assert value(metrics, "eblocks_pattern_tasks_active", pattern="pool") == 2
    assert value(metrics, "eblocks_pattern_queue_depth", pattern="pool") == 1
    assert value(metrics, "eblocks_requests_in_flight", direction="inbound") == 3
    gate.set()
    assert sorted(r.body for r in await asyncio.gather(*tasks)) == [b"t0", b"t1", b"t2"]
    await caller.aclose()
    metrics = await mesh.metrics(boss)
    assert value(metrics, "eblocks_pattern_queue_depth", pattern="pool") == 0
    assert value(metrics, "eblocks_requests_total", direction="outbound", dst_block="w") == 3


async def test_retries_and_failures_are_counted_per_edge(mesh: Mesh) -> None:
    async def front(msg: Message, ctx: Context) -> Message:
        return await ctx.call("w", msg)

    async def w(msg: Message) -> bytes:
        if msg.body == b"bad":
            raise ValueError("bad input")
        return msg.body

    f = await mesh.start("front", front)
    await mesh.start("w", w)
    mesh.resolver.set("w", ["127.0.0.1:1", *mesh.resolver.endpoints("w")])
    caller = MeshClient(SPEC, mesh.resolver)
    for i in range(4):
        await caller.call("front", Message(b"ok", {IDEMPOTENCY_HEADER: f"k{i}"}))
    with pytest.raises(Exception, match="bad input"):
        await caller.call("front", Message(b"bad", {IDEMPOTENCY_HEADER: "k-bad"}))
    await caller.aclose()
    m = await mesh.metrics(f)
    assert value(m, "eblocks_requests_total", direction="inbound", status_code="200") == 4
    assert value(m, "eblocks_requests_total", direction="inbound", classification="failure") == 1
    out = {"direction": "outbound", "src_block": "front", "dst_block": "w", "route": "direct"}
    assert value(m, "eblocks_requests_total", status_code="200", **out) == 4
    assert value(m, "eblocks_requests_total", status_code="500", **out) == 1
    # round robin puts the dead endpoint first for every other try; each costs one retry
    retries = value(m, "eblocks_retries_total", src_block="front", dst_block="w")
    assert 2 <= retries <= 5
    assert value(m, "eblocks_request_errors_total", direction="outbound", reason="handler") == 1


async def test_an_application_block_is_labelled_by_route_template(mesh: Mesh) -> None:
    async def item(request: web.Request) -> web.Response:
        if request.match_info["id"] == "gone":
            raise web.HTTPGone(text="item gone")  # raised, not returned: counted all the same
        return web.json_response({"id": request.match_info["id"]})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    shop = await mesh.start("shop", app=app)
    async with mesh.session.get(f"http://127.0.0.1:{shop.port}/items/1") as resp:
        assert resp.status == 200
    async with mesh.session.get(f"http://127.0.0.1:{shop.port}/items/2") as resp:
        assert resp.status == 200
    async with mesh.session.get(f"http://127.0.0.1:{shop.port}/nowhere") as resp:
        assert resp.status == 404
    m = await mesh.metrics(shop)
    assert value(m, "eblocks_requests_total", route="GET /items/{id}", status_code="200") == 2
    assert value(m, "eblocks_requests_total", status_code="404", src_block="external") == 1
    async with mesh.session.get(f"http://127.0.0.1:{shop.port}/items/gone") as resp:
        assert (resp.status, await resp.text()) == (410, "item gone")
    m = await mesh.metrics(shop)
    route = {"route": "GET /items/{id}"}
    assert value(m, "eblocks_requests_total", status_code="410", **route) == 1
    assert value(m, "eblocks_response_bytes_total", **route) == 2 * len(b'{"id": "1"}') + 9


async def test_config_is_the_effective_spec_with_secrets_redacted(mesh: Mesh) -> None:
    async def w(msg: Message) -> bytes:
        return msg.body

    block = await mesh.start("w", w)
    config = orjson.loads(await mesh.get(block, "/v1/config"))
    assert config["block"] == "w"
    assert config["settings"]["timeout"] == 10.0
    assert config["settings"]["retries"]["attempts"] == 3
    assert config["spec"]["discovery"]["key"] == REDACTED
    assert config["spec"]["blocks"]["w"]["env"] == {"API_TOKEN": REDACTED, "COLOUR": "blue"}
    assert b"hunter2" not in await mesh.get(block, "/v1/config")


async def test_config_shows_the_policies_in_force(mesh: Mesh) -> None:
    async def w(msg: Message) -> bytes:
        return msg.body

    block = await mesh.start("w", w)
    config = orjson.loads(await mesh.get(block, "/v1/config"))
    assert config["policies"] == {"version": 0, "digest": block.policies.current.digest}
    applied = Policies.model_validate({"blocks": {"w": {"bulkhead": {"max_concurrent": 3}}}})
    assert block.policies.swap(PolicyState.of(applied, 4))
    config = orjson.loads(await mesh.get(block, "/v1/config"))
    assert config["policies"] == {"version": 4, "digest": digest_of(applied)}
    assert config["spec"]["policies"]["blocks"]["w"]["bulkhead"]["max_concurrent"] == 3


async def test_tap_streams_bounded_summaries(mesh: Mesh) -> None:
    async def w(msg: Message) -> bytes:
        return msg.body

    block = await mesh.start("w", w)
    url = f"http://127.0.0.1:{block.admin_port}/v1/tap?limit=3&seconds=20&direction=inbound"
    lines: list[dict[str, Any]] = []

    async def read() -> None:
        async with mesh.session.get(url) as resp:
            assert resp.headers["content-type"] == "application/x-ndjson"
            async for raw in resp.content:
                if raw.strip():
                    lines.append(orjson.loads(raw))

    reader = asyncio.create_task(read())
    await _until(lambda: bool(block.telemetry.tap))
    caller = MeshClient(SPEC, mesh.resolver, source="front")
    for i in range(5):
        await caller.call("w", Message(b"x" * i, {"x-request-id": f"r{i}"}))
    await caller.aclose()
    await asyncio.wait_for(reader, 10)
    assert [line["request_id"] for line in lines] == ["r0", "r1", "r2"]  # limit=3, then it ends
    assert {line["source"] for line in lines} == {"front"}
    assert [line["bytes_in"] for line in lines] == [0, 1, 2]
    assert not block.telemetry.tap  # the subscriber is gone


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("seconds=nan", "seconds"),
        ("seconds=inf", "seconds"),
        ("seconds=-inf", "seconds"),
        ("seconds=-1", "seconds"),
        ("seconds=0", "seconds"),
        ("seconds=soon", "seconds"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("limit=nan", "limit"),
        ("limit=2.5", "limit"),
        ("limit=1e9999", "limit"),
    ],
)
async def test_tap_refuses_bad_bounds_before_the_stream_starts(
    mesh: Mesh, query: str, name: str
) -> None:
    async def w(msg: Message) -> bytes:
        return msg.body

    block = await mesh.start("w", w)
    url = f"http://127.0.0.1:{block.admin_port}/v1/tap?{query}"
    async with mesh.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        assert resp.status == 400  # before any stream: no 200 that ends in a crash
        text = await resp.text()
    assert text.startswith(f"/v1/tap: {name} ")
    assert not block.telemetry.tap  # nobody subscribed
    ok = f"http://127.0.0.1:{block.admin_port}/v1/tap?limit=1&seconds=0.05"
    async with mesh.session.get(ok) as resp:  # the handler still serves (and bounds hold)
        assert resp.status == 200
        await resp.read()


async def test_tap_bounds_past_the_servers_are_cut_to_them(
    monkeypatch: pytest.MonkeyPatch, serve_app: Callable[[web.Application], Awaitable[int]]
) -> None:
    tap = Tap()
    seen: list[tuple[int, float]] = []

    async def pump(_: Any, __: Any, limit: int, seconds: float) -> None:
        seen.append((limit, seconds))

    monkeypatch.setattr(tap, "_pump", pump)
    app = web.Application()
    app.router.add_get("/v1/tap", tap.stream)
    port = await serve_app(app)
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/v1/tap?limit={'9' * 400}&seconds=99999"
        async with session.get(url) as resp:
            assert resp.status == 200
            await resp.read()
    assert seen == [(MAX_LIMIT, MAX_SECONDS)]
