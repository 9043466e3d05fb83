"""Random: uniform picks from the injected RNG."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from eblocks._types import Endpoint
from eblocks.balance import RandomChoice


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i) for i in range(n)]


def test_every_endpoint_gets_about_an_equal_share() -> None:
    eps, balancer = endpoints(4), RandomChoice(random.Random(7))
    counts = Counter(balancer.pick(eps).instance for _ in range(8000))
    assert set(counts) == {ep.instance for ep in eps}
    assert all(1800 <= n <= 2200 for n in counts.values()), counts


def test_same_seed_same_picks() -> None:
    eps = endpoints(5)
    first, second = RandomChoice(random.Random(3)), RandomChoice(random.Random(3))
    picks = [first.pick(eps).instance for _ in range(20)]
    assert picks == [second.pick(eps).instance for _ in range(20)]
    assert len(set(picks)) > 1


def test_single_endpoint() -> None:
    eps = endpoints(1)
    assert RandomChoice(random.Random(0)).pick(eps, key="k") is eps[0]


def test_no_endpoints() -> None:
    with pytest.raises(LookupError):
        RandomChoice(random.Random(0)).pick([])
