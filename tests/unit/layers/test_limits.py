"""Limits: past max_pending tries in flight to a target, `overloaded` at once, no queue."""

from __future__ import annotations

import asyncio

import pytest

from eblocks._types import Call
from eblocks.errors import OverloadedError
from eblocks.layers.limits import Pending, limits
from eblocks.message import Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.spec.policies import BlockPolicy, ConnectionLimits, Policies


def state(max_pending: int | None, version: int = 0) -> PolicyState:
    rule = BlockPolicy(limits=ConnectionLimits(max_pending=max_pending))
    return PolicyState.of(Policies(blocks={"b": rule}), version)


async def test_past_max_pending_a_try_is_refused_at_once() -> None:
    release = asyncio.Event()
    entered: list[int] = []

    async def slow(call: Call) -> Message:
        entered.append(1)
        await release.wait()
        return Message(b"ok")

    holder, pending = LivePolicies(state(2)), Pending()
    send = limits(holder, "b", pending)(slow)

    async def one() -> Message:
        return await send(Call("b", Message()))

    held = [asyncio.create_task(one()) for _ in range(2)]
    await asyncio.sleep(0)
    assert pending.count == 2
    with pytest.raises(OverloadedError) as caught:
        await send(Call("b", Message()))
    assert caught.value.reason == "overloaded"
    assert caught.value.status == 503
    assert caught.value.detail == {"target": "b", "max_pending": 2}
    assert len(entered) == 2  # the refused try never reached the inner layer
    holder.swap(state(3, version=1))  # a new bound applies to the next try
    third = asyncio.create_task(one())
    await asyncio.sleep(0)
    assert len(entered) == 3
    release.set()
    assert [r.body for r in await asyncio.gather(*held, third)] == [b"ok"] * 3
    assert pending.count == 0


async def test_without_a_bound_nothing_is_refused() -> None:
    async def fine(call: Call) -> Message:
        await asyncio.sleep(0)
        return Message(b"ok")

    send = limits(LivePolicies(state(None)), "b")(fine)
    replies = await asyncio.gather(*(send(Call("b", Message())) for _ in range(50)))
    assert len(replies) == 50
