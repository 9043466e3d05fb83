"""Round robin: each endpoint in turn."""

from __future__ import annotations

import pytest

from eblocks._types import Endpoint
from eblocks.balance import RoundRobin


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i) for i in range(n)]


def test_cycles_in_order() -> None:
    eps, rr = endpoints(3), RoundRobin()
    assert [rr.pick(eps).port for _ in range(7)] == [9000, 9001, 9002, 9000, 9001, 9002, 9000]


def test_single_endpoint() -> None:
    eps, rr = endpoints(1), RoundRobin()
    assert {rr.pick(eps).instance for _ in range(3)} == {"b-0"}


def test_stays_in_range_when_the_list_shrinks() -> None:
    rr = RoundRobin()
    for _ in range(3):
        rr.pick(endpoints(4))
    shorter = endpoints(2)
    picks = [rr.pick(shorter).instance for _ in range(4)]
    assert sorted(set(picks)) == ["b-0", "b-1"]
    assert picks[0::2] != picks[1::2]  # still alternating


def test_every_endpoint_gets_an_equal_share() -> None:
    eps, rr = endpoints(5), RoundRobin()
    counts = {ep.instance: 0 for ep in eps}
    for _ in range(50):
        counts[rr.pick(eps).instance] += 1
    assert set(counts.values()) == {10}


def test_no_endpoints() -> None:
    with pytest.raises(LookupError):
        RoundRobin().pick([])
