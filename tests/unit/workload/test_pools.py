"""Autoscaler ticks on real in-process blocks, a fake clock, and ``GET /v1/pools``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from eblocks import Block, Context, Message
from eblocks.errors import ScalerError
from eblocks.spec import parse_spec
from eblocks.spec.models import ManagerWorker
from eblocks.testing import FakeClock
from eblocks.workload import relay
from eblocks.workload.pools import Autoscaler

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults:
  timeout: 10s
blocks:
  boss: {}
  w: {handler: "tests:w"}
patterns:
  pool:
    manager-worker:
      manager: boss
      worker: w
      concurrency: 1
      queue: {max: 10}
      workers: {min: 1, max: 3, target_inflight: 1, scale_down_delay: 2s}
""",
    "unit.yaml",
)
POOL: ManagerWorker = SPEC.patterns["pool"].manager_worker  # type: ignore[union-attr]


class PublishingScaler:
    """A `Scaler` for an in-process mesh: ``n`` workers = the first ``n`` blocks published.

    With ``publish=False`` a request is applied only when the test calls `publish`,
    as a supervisor or Kubernetes applies it a while later.
    """

    def __init__(self, mesh: Any, *, publish: bool = True) -> None:
        self.mesh = mesh
        self.asks: list[int] = []
        self.size = 1
        self.applied = 1
        self.publish_at_once = publish

    async def scale(self, pool: str, n: int) -> None:
        self.asks.append(n)
        self.size = n
        if self.publish_at_once:
            self.publish()

    async def current(self, pool: str) -> int | None:
        return self.applied

    def publish(self) -> None:
        self.applied = self.size
        blocks: list[Block] = self.mesh.blocks["w"][: self.size]
        self.mesh.resolver.set("w", [f"127.0.0.1:{b.port}" for b in blocks])


class Gated:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.done: list[str] = []

    async def handle(self, msg: Message, ctx: Context) -> bytes:
        await self.gate.wait()
        self.done.append(msg.body.decode())
        return msg.body


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def _pools(block: Block) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{block.admin_port}/v1/pools") as resp,
    ):
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def test_load_grows_the_pool_then_it_shrinks_after_the_window(local_mesh: Any) -> None:
    workers = Gated()
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (workers.handle, 3)})
    scaler = PublishingScaler(mesh, publish=False)
    scaler.publish()  # one worker to start with
    boss: Block = mesh.blocks["boss"][0]
    clock = FakeClock(100.0)
    auto = Autoscaler("pool", POOL, boss.pools, scaler, clock=clock)

    idle = await auto.tick()
    assert (idle.desired, scaler.asks) == (1, [1])

    calls = [
        asyncio.create_task(mesh.client.call("pool", Message(f"t{i}".encode()))) for i in range(3)
    ]
    await _until(lambda: boss.pools.load("pool") == (1, 2))  # one slot, two queued
    busy = await auto.tick()
    assert (busy.raw, busy.desired, scaler.asks) == (3, 3, [1, 3])
    row = (await _pools(boss))["pools"][0]
    assert row["active"] == 1
    assert row["queued"] == 2
    assert row["workers_ready"] == 1
    assert row["autoscale"]["desired"] == 3
    assert row["autoscale"]["scaling_up_for_s"] == 0.0
    clock.advance(0.2)
    await auto.tick()  # not applied yet: the request stands, it is not repeated
    assert (scaler.asks, auto.scale_ups) == ([1, 3], 1)

    clock.advance(1.2)  # the new workers take a while to be ready
    scaler.publish()
    await auto.tick()
    assert auto.last_scale_up_s == pytest.approx(1.4)
    # the queued tasks went to the new workers at once, before the first one finished
    assert boss.pools.load("pool") == (3, 0)
    assert workers.done == []
    workers.gate.set()
    replies = await asyncio.gather(*calls)
    assert sorted(r.body for r in replies) == [b"t0", b"t1", b"t2"]
    assert sorted(workers.done) == ["t0", "t1", "t2"]  # every task ran once

    clock.advance(1.0)
    assert (await auto.tick()).desired == 3  # idle for 1 s of a 2 s window: keep them
    clock.advance(1.5)
    assert (await auto.tick()).desired == 1
    assert scaler.asks == [1, 3, 1]
    assert (auto.scale_ups, auto.scale_downs) == (1, 1)

    body = await _pools(boss)
    assert body["instance"] == "boss-0"
    assert body["block"] == "boss"
    (row,) = body["pools"]
    assert row["pattern"] == "pool"
    assert row["kind"] == "manager-worker"
    assert row["queue_max"] == 10
    assert row["autoscale"]["last_scale_up_s"] == pytest.approx(1.4)
    assert (row["autoscale"]["min"], row["autoscale"]["max"]) == (1, 3)


async def test_steady_pool_is_not_asked_again(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (Gated().handle, 1)})
    scaler = PublishingScaler(mesh)
    auto = Autoscaler("pool", POOL, mesh.blocks["boss"][0].pools, scaler, clock=FakeClock())
    for _ in range(5):
        await auto.tick()
    assert scaler.asks == [1]


class BrokenScaler:
    def __init__(self) -> None:
        self.calls = 0

    async def scale(self, pool: str, n: int) -> None:
        self.calls += 1
        raise ScalerError("API server answered 403")

    async def current(self, pool: str) -> int | None:
        return 2  # a size it knows: the autoscaler asks for 1 (no load) and is refused


async def test_a_failing_scaler_is_reported_and_tried_again(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (Gated().handle, 1)})
    boss: Block = mesh.blocks["boss"][0]
    scaler = BrokenScaler()
    auto = Autoscaler("pool", POOL, boss.pools, scaler, clock=FakeClock())
    task = asyncio.create_task(auto.run())
    await _until(lambda: scaler.calls >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert auto.error == "API server answered 403"


async def test_pools_autoscale_starts_one_loop_per_autoscaled_pattern(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (Gated().handle, 1)})
    boss: Block = mesh.blocks["boss"][0]
    worker: Block = mesh.blocks["w"][0]
    scaler = PublishingScaler(mesh)
    (auto,) = boss.pools.autoscale(scaler, interval=0.01)
    assert auto.pattern == "pool"
    await _until(lambda: scaler.asks == [1])
    assert worker.pools.autoscale(scaler) == []  # a worker manages nothing
    assert (await _pools(worker))["pools"] == []
    await boss.pools.aclose()


def test_an_autoscaler_needs_workers() -> None:
    plain = POOL.model_copy(update={"workers": None})
    with pytest.raises(ValueError, match="sets no 'workers'"):
        Autoscaler("pool", plain, None, PublishingScaler(None), clock=FakeClock())  # type: ignore[arg-type]


class SilentScaler:
    """Knows no size yet (as before the supervisor's first pools.json)."""

    def __init__(self) -> None:
        self.asks: list[int] = []

    async def scale(self, pool: str, n: int) -> None:
        self.asks.append(n)

    async def current(self, pool: str) -> int | None:
        return None


async def test_no_phantom_scale_up_before_the_scaler_knows_a_size(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (Gated().handle, 1)})
    mesh.resolver.set("w", [])  # no worker seen yet either (gossip still converging)
    scaler = SilentScaler()
    auto = Autoscaler("pool", POOL, mesh.blocks["boss"][0].pools, scaler, clock=FakeClock())
    assert (await auto.tick()).desired == 1
    assert scaler.asks == []  # nothing to grow, and no size known to shrink
    assert auto.scale_ups == 0
    assert auto.snapshot()["scaling_up_for_s"] is None


async def test_a_starting_pool_is_not_shrunk_to_the_workers_ready_so_far(local_mesh: Any) -> None:
    """Before the supervisor says a size, 1 ready of 3 starting is no size to ask for."""
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (Gated().handle, 1)})
    scaler = SilentScaler()
    auto = Autoscaler("pool", POOL, mesh.blocks["boss"][0].pools, scaler, clock=FakeClock())
    for _ in range(3):
        await auto.tick()
    assert scaler.asks == []
    assert auto.scale_downs == 0
