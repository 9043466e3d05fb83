"""Weighted: picks in proportion to the ``weight`` label."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from eblocks._types import Endpoint
from eblocks.balance import Weighted
from eblocks.balance.weighted import DEFAULT_WEIGHT, weight_of


def endpoint(i: int, weight: str | None = None) -> Endpoint:
    labels = {} if weight is None else {"weight": weight}
    return Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i, labels)


def shares(eps: list[Endpoint], picks: int, seed: int = 11) -> dict[str, float]:
    balancer = Weighted(random.Random(seed))
    counts = Counter(balancer.pick(eps).instance for _ in range(picks))
    return {name: n / picks for name, n in counts.items()}


def test_picks_in_proportion_to_the_weights() -> None:
    got = shares([endpoint(0, "1"), endpoint(1, "3"), endpoint(2, "6")], 20_000)
    assert got["b-0"] == pytest.approx(0.1, abs=0.015)
    assert got["b-1"] == pytest.approx(0.3, abs=0.015)
    assert got["b-2"] == pytest.approx(0.6, abs=0.015)


def test_missing_label_counts_as_the_default_weight() -> None:
    got = shares([endpoint(0), endpoint(1, "3")], 20_000)
    assert got["b-0"] == pytest.approx(0.25, abs=0.015)


def test_zero_weight_drains_an_endpoint() -> None:
    got = shares([endpoint(0, "0"), endpoint(1, "1"), endpoint(2, "0"), endpoint(3, "2")], 3000)
    assert set(got) == {"b-1", "b-3"}


def test_all_zero_weights_fall_back_to_uniform() -> None:
    got = shares([endpoint(0, "0"), endpoint(1, "0")], 2000)
    assert got["b-0"] == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("2.5", 2.5),
        ("0", 0.0),
        ("oops", DEFAULT_WEIGHT),
        ("-1", DEFAULT_WEIGHT),
        ("nan", DEFAULT_WEIGHT),
        ("inf", DEFAULT_WEIGHT),
        (None, DEFAULT_WEIGHT),
    ],
)
def test_weight_of(label: str | None, expected: float) -> None:
    assert weight_of(endpoint(0, label)) == expected


def test_no_endpoints() -> None:
    with pytest.raises(LookupError):
        Weighted(random.Random(0)).pick([])


class EdgeRandom(random.Random):
    """Always draws 0.0, the edge between a zero weight and the next one."""

    def random(self) -> float:
        return 0.0


def test_a_zero_weight_is_skipped_even_at_the_edge_of_the_draw() -> None:
    eps = [endpoint(0, "0"), endpoint(1, "1")]
    assert Weighted(EdgeRandom()).pick(eps) is eps[1]
