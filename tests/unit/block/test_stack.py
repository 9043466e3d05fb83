"""The client stack assembled in stack.py, over an in-memory transport and a fake clock."""

from __future__ import annotations

import random

import pytest

from eblocks._types import Call
from eblocks.block.stack import client_stack
from eblocks.errors import ConnectError, MeshTimeoutError
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.spec.models import Defaults, RetryPolicy, resolve_settings
from eblocks.testing import FakeClock, StaticResolver, transport_from

SETTINGS = resolve_settings(
    "b", None, Defaults(timeout=5.0, retries=RetryPolicy(attempts=3, backoff=0.1))
)


async def test_a_retry_goes_back_through_the_balancer_to_another_endpoint() -> None:
    tried: list[tuple[str, int, float | None]] = []

    def transport(call: Call) -> Message:
        assert call.endpoint is not None
        tried.append((call.endpoint.address, call.attempt, call.deadline))
        if len(tried) == 1:  # whichever endpoint the balancer picked first refuses
            raise ConnectError("refused")
        return Message(b"from " + call.endpoint.address.encode())

    clock = FakeClock(start=100.0)
    resolver = StaticResolver({"b": ["10.0.0.1:1", "10.0.0.2:2"]})
    send = client_stack(SETTINGS, resolver, transport_from(transport), clock, random.Random(5))
    reply = await send(Call("b", Message(b"x", {IDEMPOTENCY_HEADER: "k"})))
    (first, *_), (second, *_) = tried
    assert {first, second} == {"10.0.0.1:1", "10.0.0.2:2"}  # the retry went to the other one
    assert reply.body == b"from " + second.encode()
    assert [(attempt, deadline) for _, attempt, deadline in tried] == [(1, 105.0), (2, 105.0)]
    assert len(clock.sleeps) == 1


async def test_the_deadline_bounds_all_tries() -> None:
    def transport(call: Call) -> Message:
        raise ConnectError("refused")

    clock = FakeClock()
    resolver = StaticResolver({"b": ["10.0.0.1:1"]})
    send = client_stack(SETTINGS, resolver, transport_from(transport), clock, random.Random(5))
    with pytest.raises(ConnectError):
        await send(Call("b", Message(b"x", {IDEMPOTENCY_HEADER: "k"}), deadline=0.01))
    assert clock.sleeps == []  # no backoff fits in 10 ms
    clock.advance(1.0)
    with pytest.raises(MeshTimeoutError):
        await send(Call("b", Message(b"x"), deadline=0.5))
