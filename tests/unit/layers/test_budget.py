"""Retry budget: retries <= ratio x first tries + min_per_second x window, over a sliding window."""

from __future__ import annotations

import random

import pytest

from eblocks._types import Call
from eblocks.errors import ConnectError
from eblocks.layers.budget import Budget, Budgets
from eblocks.layers.retry import retry
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.spec.models import RetryPolicy
from eblocks.spec.policies import BlockPolicy, Policies, RetryBudget, Route
from eblocks.testing import FakeClock, transport_from

RULE = RetryBudget(ratio=0.2, min_per_second=0, window=10)


def spend(budget: Budget, tries: int) -> int:
    """Ask for ``tries`` retries; how many the budget granted."""
    return sum(budget.try_retry() for _ in range(tries))


def test_retries_are_a_share_of_the_first_tries() -> None:
    budget = Budget(RULE, FakeClock())
    assert spend(budget, 5) == 0  # no first try yet, no floor: nothing to spend
    for _ in range(100):
        budget.first()
    assert spend(budget, 50) == 20
    assert budget.counts() == (100, 20)


def test_the_floor_allows_min_per_second_over_the_window() -> None:
    budget = Budget(RetryBudget(ratio=0.0, min_per_second=2, window=5), FakeClock())
    assert spend(budget, 30) == 10


def test_counts_leave_the_window_bucket_by_bucket() -> None:
    clock = FakeClock()
    budget = Budget(RULE, clock)
    for _ in range(50):
        budget.first()  # bucket 0
    clock.advance(5.0)
    for _ in range(50):
        budget.first()  # bucket 5
    assert spend(budget, 100) == 20
    clock.advance(5.0)  # t=10: bucket 0 has left the window, with its 50 first tries
    assert budget.counts() == (50, 20)
    assert spend(budget, 100) == 0  # the 20 retries (at t=5) still fill 0.2 x 50 + 10 more
    clock.advance(5.0)  # t=15: everything has left
    assert budget.counts() == (0, 0)
    clock.advance(1000.0)  # a long idle gap costs at most one pass over the buckets
    budget.first()
    assert budget.counts() == (1, 0)


def live(rule: RetryBudget | None, version: int = 0, routes: tuple[Route, ...] = ()) -> PolicyState:
    blocks = {"b": BlockPolicy(retry_budget=rule)} if rule is not None else {}
    return PolicyState.of(Policies(routes=routes, blocks=blocks), version)


def test_budgets_keep_their_counts_while_the_rule_is_unchanged() -> None:
    holder = LivePolicies(live(RULE))
    budgets = Budgets(holder, "b", FakeClock())
    first = budgets()
    assert first is not None
    first.first()
    holder.swap(live(RetryBudget(ratio=0.2, min_per_second=0, window=10), version=1))
    assert budgets() is first  # an equal rule in a newer version: same window
    holder.swap(live(RetryBudget(ratio=0.5, min_per_second=0, window=10), version=2))
    changed = budgets()
    assert changed is not None
    assert changed is not first
    assert changed.counts() == (0, 0)
    holder.swap(live(None, version=3))
    assert budgets() is None


def keyed() -> Message:
    return Message(b"x", {IDEMPOTENCY_HEADER: "k"})


async def test_retry_layer_stops_retrying_when_the_budget_is_spent() -> None:
    tries: list[int] = []
    refused: list[int] = []

    def down(call: Call) -> Message:
        tries.append(call.attempt)
        raise ConnectError("refused")

    clock = FakeClock()
    holder = LivePolicies(live(RetryBudget(ratio=0.5, min_per_second=0, window=10)))
    layer = retry(
        RetryPolicy(attempts=3, backoff=0.001),
        clock,
        random.Random(1),
        Budgets(holder, "b", clock),
        lambda: refused.append(1),
    )
    send = layer(transport_from(down))
    details = []
    for _ in range(10):
        with pytest.raises(ConnectError) as caught:
            await send(Call("b", keyed()))
        details.append(caught.value.detail.get("retry_budget"))
    assert len(tries) - 10 == 5  # retries: 0.5 x 10 first tries, not the 20 attempts allow
    assert details == ["exhausted"] * 10  # each call wanted 2 retries; none got both
    assert len(refused) == 10


async def test_the_routes_retry_policy_replaces_the_blocks() -> None:
    tries: list[int] = []

    def down(call: Call) -> Message:
        tries.append(call.attempt)
        raise ConnectError("refused")

    route = Route(name="r", to="b", retries={"attempts": 5, "backoff": 0.001})
    send = retry(RetryPolicy(attempts=2, backoff=0.001), FakeClock(), random.Random(1))(
        transport_from(down)
    )
    with pytest.raises(ConnectError):
        await send(Call("b", keyed()))
    assert tries == [1, 2]
    tries.clear()
    with pytest.raises(ConnectError):
        await send(Call("b", keyed(), route=route))
    assert tries == [1, 2, 3, 4, 5]
