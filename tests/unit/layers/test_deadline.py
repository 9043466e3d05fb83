"""Deadline: one bound over every try; a passed deadline never reaches the network."""

from __future__ import annotations

import asyncio

import pytest

from eblocks._types import Call
from eblocks.errors import MeshTimeoutError
from eblocks.layers.deadline import deadline
from eblocks.message import Message
from eblocks.testing import FakeClock, transport_from


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, call: Call) -> Message:
        self.calls.append(call)
        return Message(b"ok")


async def test_sets_the_deadline_from_the_timeout() -> None:
    clock, inner = FakeClock(start=5.0), Recorder()
    send = deadline(2.0, clock)(transport_from(inner))
    assert (await send(Call("b", Message()))).body == b"ok"
    assert inner.calls[0].deadline == 7.0


@pytest.mark.parametrize(("inherited", "expected"), [(6.0, 6.0), (10.0, 7.0)])
async def test_keeps_the_earlier_of_inherited_and_own_deadline(
    inherited: float, expected: float
) -> None:
    clock, inner = FakeClock(start=5.0), Recorder()
    send = deadline(2.0, clock)(transport_from(inner))
    await send(Call("b", Message(), deadline=inherited))
    assert inner.calls[0].deadline == expected


async def test_passed_deadline_fails_fast_without_calling_inner() -> None:
    clock, inner = FakeClock(start=100.0), Recorder()
    send = deadline(30.0, clock)(transport_from(inner))
    with pytest.raises(MeshTimeoutError, match="deadline passed before calling 'b'"):
        await send(Call("b", Message(), deadline=99.0))
    with pytest.raises(MeshTimeoutError):
        await send(Call("b", Message(), deadline=100.0))  # exactly now is passed too
    assert inner.calls == []


async def test_no_answer_within_the_deadline_is_a_mesh_timeout() -> None:
    never = asyncio.Event()

    async def hang(call: Call) -> Message:
        await never.wait()
        return Message()

    # The fake time leaves a 1 ms budget; asyncio.timeout enforces it on the loop.
    clock = FakeClock(start=50.0)
    send = deadline(30.0, clock)(transport_from(hang))
    with pytest.raises(MeshTimeoutError) as info:
        await send(Call("b", Message(), deadline=50.001))
    assert isinstance(info.value, TimeoutError)
    assert info.value.detail == {"target": "b"}
    assert "no answer from 'b'" in info.value.message


async def test_inner_timeout_passes_through_unchanged() -> None:
    original = MeshTimeoutError("downstream deadline", origin="c")

    def fail(call: Call) -> Message:
        raise original

    send = deadline(30.0, FakeClock())(transport_from(fail))
    with pytest.raises(MeshTimeoutError) as info:
        await send(Call("b", Message()))
    assert info.value is original
