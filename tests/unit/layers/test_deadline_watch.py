"""The deadline layer's shared timer: many calls in flight, one loop timer, exact outcomes."""

from __future__ import annotations

import asyncio

import pytest

from eblocks._types import Call, Send
from eblocks.errors import MeshTimeoutError
from eblocks.layers.deadline import deadline
from eblocks.message import Message
from eblocks.testing import FakeClock, transport_from

NEVER = 3600.0


def _sender(clock: FakeClock) -> tuple[dict[str, asyncio.Event], Send]:
    gates: dict[str, asyncio.Event] = {}

    async def wait_for_gate(call: Call) -> Message:
        await gates.setdefault(call.message.body.decode(), asyncio.Event()).wait()
        return call.message

    return gates, deadline(NEVER, clock)(transport_from(wait_for_gate))


async def test_each_call_times_out_on_its_own_deadline_whatever_the_arrival_order() -> None:
    clock = FakeClock()
    gates, send = _sender(clock)
    # the late arrival has the earliest deadline: the shared timer must be re-armed for it
    slow = asyncio.ensure_future(send(Call("b", Message(b"slow"), deadline=NEVER / 2)))
    await asyncio.sleep(0)
    fast = asyncio.ensure_future(send(Call("b", Message(b"fast"), deadline=0.005)))
    with pytest.raises(MeshTimeoutError):
        await fast
    assert not slow.done()
    gates["slow"].set()
    assert (await slow).body == b"slow"


async def test_finished_calls_are_not_cancelled_when_the_timer_fires() -> None:
    clock = FakeClock()
    gates, send = _sender(clock)
    for name in ("a", "b", "c"):
        gates[name] = asyncio.Event()
        gates[name].set()
    done = await asyncio.gather(
        *(send(Call("b", Message(n.encode()), deadline=0.002)) for n in ("a", "b", "c"))
    )
    assert [m.body for m in done] == [b"a", b"b", b"c"]
    await asyncio.sleep(0.01)  # past every deadline: the timer fires over finished calls
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_task_whose_call_timed_out_can_call_again() -> None:
    clock = FakeClock()
    gates, send = _sender(clock)
    with pytest.raises(MeshTimeoutError):
        await send(Call("b", Message(b"hang"), deadline=0.002))
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the layer took its cancel request back
    gates["ok"] = asyncio.Event()
    gates["ok"].set()
    assert (await send(Call("b", Message(b"ok"), deadline=1.0))).body == b"ok"


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    clock = FakeClock()
    _, send = _sender(clock)
    call = asyncio.ensure_future(send(Call("b", Message(b"hang"), deadline=NEVER / 2)))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
