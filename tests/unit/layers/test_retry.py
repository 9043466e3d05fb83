"""Retry: only idempotent calls, only transient failures, bounded by attempts and deadline."""

from __future__ import annotations

import random

import pytest

from eblocks._types import Call
from eblocks.errors import (
    ConnectError,
    HandlerError,
    MeshError,
    MeshTimeoutError,
    NoEndpointsError,
    UpstreamError,
)
from eblocks.layers.retry import backoff_delay, is_retryable, retry
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.spec.models import RetryPolicy
from eblocks.testing import FakeClock, transport_from

POLICY = RetryPolicy(attempts=3, backoff=0.1, max_backoff=1.0)


class CeilingRandom(random.Random):
    """Always draws the top of the range, so a delay is exactly its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def upstream(status: int, reason: str = "upstream") -> UpstreamError:
    return UpstreamError(f"answered {status}", status=status, reason=reason, origin="b")


def keyed(body: bytes = b"x") -> Message:
    return Message(body, {IDEMPOTENCY_HEADER: "doc-1"})


class Flaky:
    """A transport that raises the given errors in turn, then answers ``ok``."""

    def __init__(self, *errors: MeshError) -> None:
        self.errors = list(errors)
        self.calls: list[Call] = []

    def __call__(self, call: Call) -> Message:
        self.calls.append(call)
        if self.errors:
            raise self.errors.pop(0)
        return Message(b"ok")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectError("refused"), True),
        (NoEndpointsError("none ready"), True),
        (upstream(502), True),
        (upstream(503, "overloaded"), True),
        (upstream(504, "timeout"), True),
        (upstream(500, "handler"), False),
        (upstream(400, "bad_request"), False),
        (HandlerError("raised"), False),
        (MeshTimeoutError("deadline"), False),
        (ValueError("not a mesh error"), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc, POLICY) is expected


def test_is_retryable_follows_policy_statuses() -> None:
    only_500 = RetryPolicy(on=(500,))
    assert is_retryable(upstream(500), only_500)
    assert not is_retryable(upstream(503), only_500)
    assert is_retryable(ConnectError("refused"), only_500)  # connect errors always


def test_backoff_doubles_up_to_the_cap() -> None:
    rng = CeilingRandom()
    delays = [backoff_delay(attempt, POLICY, rng) for attempt in range(1, 7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_is_full_jitter_from_the_seeded_rng() -> None:
    delays = [backoff_delay(attempt, POLICY, random.Random(7)) for attempt in (1, 2, 3)]
    expected = [random.Random(7).uniform(0, ceiling) for ceiling in (0.1, 0.2, 0.4)]
    assert delays == expected
    rng = random.Random(3)
    draws = [backoff_delay(5, POLICY, rng) for _ in range(200)]
    assert all(0 <= d <= 1.0 for d in draws)
    assert min(draws) < 0.1
    assert max(draws) > 0.9


@pytest.mark.parametrize(
    "error", [ConnectError("refused"), NoEndpointsError("none ready"), upstream(503)]
)
async def test_retries_transient_failures_of_idempotent_calls(error: MeshError) -> None:
    clock, flaky = FakeClock(), Flaky(error, error)
    send = retry(POLICY, clock, random.Random(1))(transport_from(flaky))
    reply = await send(Call("b", keyed()))
    assert reply.body == b"ok"
    assert [c.attempt for c in flaky.calls] == [1, 2, 3]
    rng = random.Random(1)
    assert clock.sleeps == [backoff_delay(1, POLICY, rng), backoff_delay(2, POLICY, rng)]
    assert clock.monotonic() == pytest.approx(sum(clock.sleeps))


async def test_does_not_retry_without_idempotency_key() -> None:
    clock, flaky = FakeClock(), Flaky(ConnectError("refused"))
    send = retry(POLICY, clock, random.Random(1))(transport_from(flaky))
    with pytest.raises(ConnectError):
        await send(Call("b", Message(b"x")))
    assert len(flaky.calls) == 1
    assert clock.sleeps == []


async def test_does_not_retry_a_handler_error() -> None:
    clock, flaky = FakeClock(), Flaky(upstream(500, "handler"))
    send = retry(POLICY, clock, random.Random(1))(transport_from(flaky))
    with pytest.raises(UpstreamError) as info:
        await send(Call("b", keyed()))
    assert info.value.upstream_status == 500
    assert len(flaky.calls) == 1
    assert clock.sleeps == []


async def test_stops_at_attempts_and_raises_the_last_error() -> None:
    errors = [ConnectError(f"refused {i}") for i in range(10)]
    clock, flaky = FakeClock(), Flaky(*errors)
    policy = RetryPolicy(attempts=4, backoff=0.01)
    send = retry(policy, clock, random.Random(1))(transport_from(flaky))
    with pytest.raises(ConnectError, match="refused 3"):
        await send(Call("b", keyed()))
    assert len(flaky.calls) == 4
    assert len(clock.sleeps) == 3


async def test_one_attempt_means_no_retry() -> None:
    clock, flaky = FakeClock(), Flaky(ConnectError("refused"))
    send = retry(RetryPolicy(attempts=1), clock, random.Random(1))(transport_from(flaky))
    with pytest.raises(ConnectError):
        await send(Call("b", keyed()))
    assert len(flaky.calls) == 1


async def test_never_sleeps_past_the_deadline() -> None:
    # Delays are 0.1 then 0.2: the first fits before 0.25, the second would not.
    clock, flaky = FakeClock(), Flaky(*[ConnectError("refused")] * 5)
    send = retry(POLICY, clock, CeilingRandom())(transport_from(flaky))
    with pytest.raises(ConnectError):
        await send(Call("b", keyed(), deadline=0.25))
    assert clock.sleeps == pytest.approx([0.1])
    assert len(flaky.calls) == 2
    assert clock.monotonic() <= 0.25


async def test_no_sleep_at_all_when_the_first_backoff_passes_the_deadline() -> None:
    clock, flaky = FakeClock(start=10.0), Flaky(ConnectError("refused"))
    send = retry(POLICY, clock, CeilingRandom())(transport_from(flaky))
    with pytest.raises(ConnectError):
        await send(Call("b", keyed(), deadline=10.05))
    assert clock.sleeps == []
    assert len(flaky.calls) == 1


async def test_each_try_carries_the_same_message_and_deadline() -> None:
    clock, flaky = FakeClock(), Flaky(ConnectError("refused"))
    send = retry(POLICY, clock, random.Random(1))(transport_from(flaky))
    msg = keyed(b"payload")
    await send(Call("b", msg, deadline=100.0))
    assert [(c.message, c.deadline, c.target) for c in flaky.calls] == [(msg, 100.0, "b")] * 2


async def test_giving_up_on_an_answer_marks_it_retried_and_nobody_retries_it_again() -> None:
    """Retries are made at one layer: the mark travels up (D71), each layer above stops."""
    clock, flaky = FakeClock(), Flaky(*[upstream(503) for _ in range(5)])
    send = retry(POLICY, clock, random.Random(1))(transport_from(flaky))
    with pytest.raises(UpstreamError) as below:
        await send(Call("b", keyed()))
    assert len(flaky.calls) == 3
    assert below.value.detail["retried"] == 3
    assert not is_retryable(below.value, POLICY)

    # the layer above (another hop's client) gets the marked answer: one try, no sleep
    above, clock_above = Flaky(below.value, below.value), FakeClock()
    send_above = retry(POLICY, clock_above, random.Random(1))(transport_from(above))
    with pytest.raises(UpstreamError):
        await send_above(Call("a", keyed()))
    assert len(above.calls) == 1
    assert clock_above.sleeps == []


async def test_a_failure_that_reached_no_handler_is_not_marked() -> None:
    clock, flaky = FakeClock(), Flaky(*[ConnectError("refused") for _ in range(5)])
    send = retry(POLICY, clock, random.Random(1))(transport_from(flaky))
    with pytest.raises(ConnectError) as info:
        await send(Call("b", keyed()))
    assert len(flaky.calls) == 3
    assert "retried" not in info.value.detail  # trying it again costs nobody work


@pytest.mark.parametrize("reason", ["connect", "no_endpoints", "circuit_open"])
async def test_an_answer_saying_a_hop_below_reached_nobody_is_not_marked(reason: str) -> None:
    """A restarting stage deeper in a pipeline: the layers above (submit) ride it out."""
    errors = [upstream(502 if reason == "connect" else 503, reason) for _ in range(5)]
    clock, flaky = FakeClock(), Flaky(*errors)
    send = retry(POLICY, clock, random.Random(1))(transport_from(flaky))
    with pytest.raises(UpstreamError) as info:
        await send(Call("b", keyed()))
    assert len(flaky.calls) == 3
    assert "retried" not in info.value.detail
