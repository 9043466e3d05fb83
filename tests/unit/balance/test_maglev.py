"""Maglev: an even lookup table, one key one endpoint, little disruption on change."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from eblocks._types import Endpoint
from eblocks.balance import Maglev
from eblocks.balance.maglev import maglev_table

KEYS = [f"doc-{i}" for i in range(10_000)]


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i) for i in range(n)]


def owners(eps: list[Endpoint], seed: int = 0, size: int = 16381) -> dict[str, str]:
    balancer = Maglev(random.Random(seed), table_size=size)
    return {key: balancer.pick(eps, key).instance for key in KEYS}


@pytest.mark.parametrize(("n", "size"), [(3, 251), (10, 16381), (7, 65537)])
def test_table_gives_every_endpoint_the_same_share_to_one_slot(n: int, size: int) -> None:
    table = maglev_table([f"b/b-{i}" for i in range(n)], size)
    counts = Counter(table)
    assert len(table) == size
    assert set(counts) == set(range(n))
    assert max(counts.values()) - min(counts.values()) <= 1


def test_same_key_same_endpoint_in_any_order_and_instance() -> None:
    eps = endpoints(6)
    first = owners(eps, seed=1)
    assert owners(list(reversed(eps)), seed=2) == first
    balancer = Maglev(random.Random(3))
    assert {balancer.pick(eps, "doc-7").instance for _ in range(20)} == {first["doc-7"]}


def test_keys_spread_evenly() -> None:
    n = 10
    counts = Counter(owners(endpoints(n)).values())
    assert len(counts) == n
    assert all(0.85 < c / len(KEYS) * n < 1.15 for c in counts.values()), counts


def test_removing_one_of_n_moves_about_one_nth_of_keys() -> None:
    n, eps = 10, endpoints(10)
    before = owners(eps)
    after = owners(eps[:3] + eps[4:])
    moved = [key for key in KEYS if before[key] != after[key]]
    others = [key for key in moved if before[key] != "b-3"]
    assert all(after[key] != "b-3" for key in KEYS)
    assert 0.5 / n < len(moved) / len(KEYS) < 1.3 / n
    assert len(others) / len(KEYS) < 0.02  # keys of the endpoints that stayed barely move


def test_adding_one_moves_about_one_nth_of_keys() -> None:
    n, eps = 10, endpoints(11)
    before = owners(eps[:n])
    after = owners(eps)
    moved = sum(before[key] != after[key] for key in KEYS)
    assert 0.5 / (n + 1) < moved / len(KEYS) < 1.3 / (n + 1)


def test_without_a_key_the_pick_is_random() -> None:
    eps, balancer = endpoints(4), Maglev(random.Random(5))
    assert {balancer.pick(eps).instance for _ in range(200)} == {ep.instance for ep in eps}


@pytest.mark.parametrize("size", [0, 1, 100, 65536])
def test_table_size_must_be_prime(size: int) -> None:
    with pytest.raises(ValueError, match="prime"):
        Maglev(random.Random(0), table_size=size)


def test_no_endpoints() -> None:
    with pytest.raises(LookupError):
        Maglev(random.Random(0)).pick([], "doc-1")
