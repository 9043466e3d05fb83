"""Fault injection: delays and aborts at their percent, with a seeded RNG and a fake clock."""

from __future__ import annotations

import random
from typing import Any

import pytest

from eblocks.block.context import Context
from eblocks.errors import FaultInjectedError
from eblocks.layers.fault import Faults, fault
from eblocks.message import Message
from eblocks.policies import LivePolicies
from eblocks.spec.policies import Policies
from eblocks.testing import FakeClock


def policies(*rules: dict[str, Any]) -> Policies:
    return Policies.model_validate({"blocks": {"store": {"faults": list(rules)}}})


def ctx() -> Context:
    return Context(block="store", instance="store-0", request_id="r")


async def pm(msg: Message, _ctx: Context) -> Message:
    return Message(b"ok")


Outcomes = tuple[list[int], list[float], list[tuple[str, str]]]


async def outcomes(
    rules: list[dict[str, Any]], n: int, headers: dict[str, str] | None = None
) -> Outcomes:
    events: list[tuple[str, str]] = []
    clock = FakeClock()
    faults = Faults(
        LivePolicies.of(policies(*rules)),
        "store",
        random.Random(7),
        on_event=lambda *a: events.append(a),
    )
    handle = fault(faults, clock)(pm)
    statuses: list[int] = []
    errors: list[FaultInjectedError] = []
    for _ in range(n):
        try:
            await handle(Message(b"", headers or {}), ctx())
            statuses.append(200)
        except FaultInjectedError as exc:
            errors.append(exc)
            statuses.append(exc.status)
    assert {(e.reason, e.origin) for e in errors} <= {("fault_injected", "store")}
    return statuses, clock.sleeps, events


async def test_aborts_land_at_their_percent_with_their_status() -> None:
    statuses, sleeps, events = await outcomes([{"abort": {"percent": 20, "status": 503}}], 5000)
    aborted = statuses.count(503)
    assert 0.18 * 5000 <= aborted <= 0.22 * 5000
    assert set(statuses) == {200, 503}
    assert sleeps == []
    assert events == [("fault_injected", "faults[0]")] * aborted


async def test_delays_sleep_on_the_clock_then_the_request_goes_on() -> None:
    rules = [{"delay": {"percent": 50, "delay": "250ms"}}]
    statuses, sleeps, events = await outcomes(rules, 2000)
    assert statuses == [200] * 2000
    assert set(sleeps) == {0.25}
    assert 900 <= len(sleeps) <= 1100
    assert events == [("fault_delayed", "faults[0]")] * len(sleeps)


async def test_percent_zero_changes_nothing() -> None:
    rules = [{"delay": {"percent": 0, "delay": "1s"}, "abort": {"percent": 0}}]
    statuses, sleeps, events = await outcomes(rules, 1000)
    assert statuses == [200] * 1000
    assert (sleeps, events) == ([], [])


async def test_only_matching_requests_and_the_first_matching_rule() -> None:
    chaos: dict[str, Any] = {
        "match": {"headers": {"x-chaos": {"exact": "1"}}},
        "abort": {"percent": 100, "status": 418},
    }
    statuses, _, _ = await outcomes([chaos], 50)
    assert statuses == [200] * 50
    statuses, _, events = await outcomes([chaos], 50, {"x-chaos": "1"})
    assert statuses == [418] * 50
    everything: dict[str, Any] = {"abort": {"percent": 100, "status": 500}}
    statuses, _, events = await outcomes([chaos, everything], 5, {"x-chaos": "1"})
    assert statuses == [418] * 5  # the first matching rule, and only it
    assert {rule for _, rule in events} == {"faults[0]"}
    statuses, _, events = await outcomes([chaos, everything], 5)
    assert statuses == [500] * 5
    assert {rule for _, rule in events} == {"faults[1]"}


async def test_delay_then_abort() -> None:
    rules = [{"delay": {"percent": 100, "delay": "1s"}, "abort": {"percent": 100, "status": 502}}]
    statuses, sleeps, events = await outcomes(rules, 3)
    assert statuses == [502] * 3
    assert sleeps == [1.0] * 3
    assert [e[0] for e in events] == ["fault_delayed", "fault_injected"] * 3


def test_the_same_seed_gives_the_same_faults() -> None:
    live = LivePolicies.of(policies({"abort": {"percent": 50}}))
    draws = []
    for _ in range(2):
        faults = Faults(live, "store", random.Random(3))
        rules = faults.cache.get()
        draws.append(
            [faults.decide(rules, lambda _rule: pytest.fail("no match to test")) for _ in range(50)]
        )
    assert draws[0] == draws[1]
    assert any(d is None for d in draws[0])
    assert any(d is not None for d in draws[0])
