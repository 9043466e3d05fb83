"""Ring hash: one key, one endpoint; a change of membership moves about 1/N of keys."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from eblocks._types import Endpoint
from eblocks.balance import RingHash

KEYS = [f"doc-{i}" for i in range(10_000)]


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i) for i in range(n)]


def owners(eps: list[Endpoint], seed: int = 0) -> dict[str, str]:
    balancer = RingHash(random.Random(seed))
    return {key: balancer.pick(eps, key).instance for key in KEYS}


def test_same_key_same_endpoint_in_any_order_and_instance() -> None:
    eps = endpoints(6)
    first = owners(eps, seed=1)
    assert owners(list(reversed(eps)), seed=2) == first
    balancer = RingHash(random.Random(3))
    assert {balancer.pick(eps, "doc-7").instance for _ in range(20)} == {first["doc-7"]}


def test_keys_spread_over_every_endpoint() -> None:
    n = 10
    counts = Counter(owners(endpoints(n)).values())
    assert len(counts) == n
    assert all(0.75 < c / len(KEYS) * n < 1.25 for c in counts.values()), counts


def test_removing_one_of_n_moves_only_its_keys() -> None:
    n, eps = 10, endpoints(10)
    before = owners(eps)
    after = owners(eps[:3] + eps[4:])
    moved = [key for key in KEYS if before[key] != after[key]]
    assert {before[key] for key in moved} == {"b-3"}
    assert 0.5 / n < len(moved) / len(KEYS) < 1.5 / n


def test_adding_one_moves_keys_only_to_it() -> None:
    n, eps = 10, endpoints(11)
    before = owners(eps[:n])
    after = owners(eps)
    moved = [key for key in KEYS if before[key] != after[key]]
    assert {after[key] for key in moved} == {"b-10"}
    assert 0.5 / (n + 1) < len(moved) / len(KEYS) < 1.5 / (n + 1)


def test_without_a_key_the_pick_is_random() -> None:
    eps, balancer = endpoints(4), RingHash(random.Random(5))
    assert {balancer.pick(eps).instance for _ in range(200)} == {ep.instance for ep in eps}


def test_rejects_no_virtual_nodes() -> None:
    with pytest.raises(ValueError, match="vnodes"):
        RingHash(random.Random(0), vnodes=0)


def test_no_endpoints() -> None:
    with pytest.raises(LookupError):
        RingHash(random.Random(0)).pick([], "doc-1")


def test_a_list_changed_in_place_is_noticed() -> None:
    """The rebuild shortcut trusts only tuples: a mutated list still rebuilds."""
    endpoints = [Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i) for i in range(4)]
    balancer = RingHash(random.Random(0))
    keys = [f"k{i}" for i in range(200)]
    before = {k: balancer.pick(endpoints, k).instance for k in keys}
    gone = endpoints.pop()
    after = {k: balancer.pick(endpoints, k).instance for k in keys}
    assert gone.instance in before.values()
    assert gone.instance not in after.values()
