"""Bulkhead: at most max_concurrent matching requests inside; the excess is refused at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eblocks.block.context import Context
from eblocks.errors import OverloadedError
from eblocks.layers.bulkhead import Bulkheads, bulkhead
from eblocks.message import PATH_HEADER, Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.spec.policies import Policies


def policies(rule: dict[str, Any] | None, block: str = "store") -> Policies:
    return Policies.model_validate({"blocks": {block: {"bulkhead": rule}}})


def ctx() -> Context:
    return Context(block="store", instance="store-0", request_id="r")


class Gate:
    """A handler that holds every request until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.inside = 0

    async def __call__(self, msg: Message, _ctx: Context) -> Message:
        self.inside += 1
        try:
            await self.release.wait()
        finally:
            self.inside -= 1
        return Message(b"done")


async def test_the_excess_is_refused_at_once_and_room_comes_back_when_one_finishes() -> None:
    denials: list[tuple[str, str]] = []
    bulkheads = Bulkheads(
        LivePolicies.of(policies({"max_concurrent": 2})),
        "store",
        on_deny=lambda *a: denials.append(a),
    )
    gate = Gate()
    handle = bulkhead(bulkheads)(gate)
    held = [asyncio.ensure_future(handle(Message(b""), ctx())) for _ in range(2)]
    await asyncio.sleep(0)
    assert gate.inside == 2
    with pytest.raises(OverloadedError) as caught:
        await handle(Message(b""), ctx())  # returns without waiting: nothing is queued
    err = caught.value
    assert (err.status, err.reason, err.origin) == (503, "overloaded", "store")
    assert err.detail == {"bulkhead": "bulkhead", "max_concurrent": 2}
    assert denials == [("overloaded", "bulkhead")]
    gate.release.set()
    assert [(await t).body for t in held] == [b"done", b"done"]
    compartment = bulkheads.cache.get()
    assert compartment is not None
    assert compartment.inside == 0
    assert (await handle(Message(b""), ctx())).body == b"done"


async def test_a_failing_handler_leaves_the_compartment() -> None:
    bulkheads = Bulkheads(LivePolicies.of(policies({"max_concurrent": 1})), "store")

    async def broken(msg: Message, _ctx: Context) -> Message:
        raise ValueError("boom")

    handle = bulkhead(bulkheads)(broken)
    for _ in range(3):
        with pytest.raises(ValueError, match="boom"):
            await handle(Message(b""), ctx())
    compartment = bulkheads.cache.get()
    assert compartment is not None
    assert compartment.inside == 0


async def test_only_matching_requests_are_counted() -> None:
    rule = {"max_concurrent": 1, "match": {"path": {"prefix": "/report"}}}
    bulkheads = Bulkheads(LivePolicies.of(policies(rule)), "store")
    gate = Gate()
    handle = bulkhead(bulkheads)(gate)
    report = Message(b"", {PATH_HEADER: "/report/1"})
    other = [asyncio.ensure_future(handle(Message(b""), ctx())) for _ in range(5)]
    held = asyncio.ensure_future(handle(report, ctx()))
    await asyncio.sleep(0)
    assert gate.inside == 6
    with pytest.raises(OverloadedError):
        await handle(report, ctx())
    gate.release.set()
    await asyncio.gather(held, *other)


async def test_a_new_limit_keeps_the_count_of_the_requests_inside() -> None:
    live = LivePolicies.of(policies({"max_concurrent": 3}))
    bulkheads = Bulkheads(live, "store")
    gate = Gate()
    handle = bulkhead(bulkheads)(gate)
    held = [asyncio.ensure_future(handle(Message(b""), ctx())) for _ in range(3)]
    await asyncio.sleep(0)
    live.swap(PolicyState.of(policies({"max_concurrent": 2}), version=1))
    with pytest.raises(OverloadedError):
        await handle(Message(b""), ctx())  # 3 inside, limit 2: shed
    live.swap(PolicyState.of(policies({"max_concurrent": 4}), version=2))
    extra = asyncio.ensure_future(handle(Message(b""), ctx()))
    await asyncio.sleep(0)
    assert gate.inside == 4
    live.swap(PolicyState.of(policies(None), version=3))  # no bulkhead: nothing is counted
    gate.release.set()
    await asyncio.gather(*held, extra)
    assert bulkheads.cache.get() is None
    assert (await handle(Message(b""), ctx())).body == b"done"
