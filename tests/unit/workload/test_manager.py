"""Manager-worker in process: dispatch across workers, retry elsewhere, 429 when full."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from eblocks import Context, Message, UpstreamError
from eblocks.errors import OverloadedError
from eblocks.message import IDEMPOTENCY_HEADER
from eblocks.spec import parse_spec
from eblocks.workload import relay

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults:
  timeout: 10s
  retries: {attempts: 2, backoff: 10ms}
blocks:
  boss: {}
  w: {handler: "tests:w"}
patterns:
  pool:
    manager-worker: {manager: boss, worker: w, balancer: round_robin, concurrency: 1,
                     queue: {max: 1}, attempts: 3}
""",
    "unit.yaml",
)


class Workers:
    """Worker handlers that record who did what, and may be held back."""

    def __init__(self) -> None:
        self.done: list[tuple[str, bytes, str | None]] = []
        self.gate: asyncio.Event | None = None
        self.started = 0

    async def handle(self, msg: Message, ctx: Context) -> bytes:
        self.started += 1
        if self.gate is not None:
            await self.gate.wait()
        self.done.append((ctx.instance, msg.body, ctx.idempotency_key))
        return msg.body.upper() + b"@" + ctx.instance.encode()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


def test_a_manager_block_without_handler_gets_the_relay() -> None:
    assert SPEC.blocks["boss"].handler == "eblocks.workload.manager:relay"


async def test_tasks_spread_over_the_workers(local_mesh: Any) -> None:
    workers = Workers()
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (workers.handle, 3)})
    replies = [await mesh.client.call("pool", Message(f"t{i}".encode())) for i in range(6)]
    assert [r.body.split(b"@")[0] for r in replies] == [f"T{i}".encode() for i in range(6)]
    assert Counter(instance for instance, _, _ in workers.done) == {"w-0": 2, "w-1": 2, "w-2": 2}


async def test_as_many_tasks_as_slots_plus_queue_all_run(local_mesh: Any) -> None:
    workers = Workers()
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (workers.handle, 3)})
    replies = await asyncio.gather(
        *(mesh.client.call("pool", Message(f"t{i}".encode())) for i in range(4))
    )  # 3 workers x concurrency 1, and 1 in the queue
    assert sorted(r.body.split(b"@")[0] for r in replies) == [b"T0", b"T1", b"T2", b"T3"]


async def test_a_task_goes_to_another_worker_when_one_is_down(local_mesh: Any) -> None:
    workers = Workers()
    mesh = await local_mesh(SPEC, {"boss": relay, "w": (workers.handle, 2)})
    mesh.publish("w", extra=["127.0.0.1:1"])  # a dead worker, first in round-robin order
    replies = [
        await mesh.client.call("pool", Message(b"job", {IDEMPOTENCY_HEADER: f"k{i}"}))
        for i in range(4)
    ]
    assert all(r.body.startswith(b"JOB@") for r in replies)
    assert len(workers.done) == 4  # each task ran once
    assert [key for _, _, key in workers.done] == ["k0", "k1", "k2", "k3"]


async def test_a_direct_call_gets_a_key_that_retries_keep(local_mesh: Any) -> None:
    workers = Workers()
    mesh = await local_mesh(SPEC, {"boss": relay, "w": workers.handle})
    mesh.publish("w", extra=["127.0.0.1:1"])
    await mesh.client.call("pool", Message(b"x", {"x-request-id": "req-7"}))
    assert [key for _, _, key in workers.done] == ["req-7"]


async def test_full_queue_answers_429_with_retry_after(local_mesh: Any) -> None:
    workers = Workers()
    workers.gate = asyncio.Event()
    mesh = await local_mesh(SPEC, {"boss": relay, "w": workers.handle})
    running = asyncio.create_task(mesh.client.call("pool", Message(b"a")))
    boss = mesh.blocks["boss"][0]
    await _until(lambda: workers.started == 1)
    queued = asyncio.create_task(mesh.client.call("pool", Message(b"b")))
    await _until(lambda: boss.inflight == 2)  # b waits in the queue (max 1); c finds it full

    with pytest.raises(UpstreamError) as info:
        await mesh.client.call("pool", Message(b"c"))

    error = info.value
    assert (error.upstream_status, error.upstream_reason, error.origin) == (
        429,
        "overloaded",
        "boss",
    )
    assert error.retry_after == 1.0
    assert error.detail["pattern"] == "pool"
    workers.gate.set()
    assert (await running).body == b"A@w-0"
    assert (await queued).body == b"B@w-0"  # accepted work is not lost


async def test_a_handler_error_is_not_retried(local_mesh: Any) -> None:
    calls: list[bytes] = []

    def broken(msg: Message) -> bytes:
        calls.append(msg.body)
        raise ValueError("bad task")

    mesh = await local_mesh(SPEC, {"boss": relay, "w": (broken, 2)})
    with pytest.raises(UpstreamError) as info:
        await mesh.client.call("pool", Message(b"x", {IDEMPOTENCY_HEADER: "k"}))
    assert (info.value.upstream_reason, info.value.origin) == ("handler", "w")
    assert calls == [b"x"]


async def test_calling_the_manager_block_directly_is_a_bad_request(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, {"boss": relay, "w": Workers().handle})
    with pytest.raises(UpstreamError) as info:
        await mesh.client.call("boss", Message(b"x"))
    assert info.value.upstream_status == 400
    assert "call its manager-worker pattern by name" in info.value.message


async def test_tries_are_not_multiplied_by_the_callers_retries(local_mesh: Any) -> None:
    """The manager's 3 tries are all a task gets: the caller's retries (2) do not multiply them."""
    calls: list[bytes] = []

    def busy(msg: Message) -> bytes:
        calls.append(msg.body)
        raise OverloadedError("too busy")  # a 503: transient for the manager

    mesh = await local_mesh(SPEC, {"boss": relay, "w": (busy, 2)})
    with pytest.raises(UpstreamError) as info:
        await mesh.client.call("pool", Message(b"x", {IDEMPOTENCY_HEADER: "k"}))
    assert info.value.upstream_status == 503
    assert info.value.detail["retried"] == 3
    assert calls == [b"x"] * 3  # 6 before: the client's 2 tries x the manager's 3
