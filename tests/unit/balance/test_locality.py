"""Locality: prefer the caller's zone, fall back to every endpoint."""

from __future__ import annotations

import random

import pytest

from eblocks._types import Endpoint
from eblocks.balance import P2C, Locality, RingHash, RoundRobin, Ticket


def endpoint(i: int, zone: str | None) -> Endpoint:
    labels = {} if zone is None else {"zone": zone}
    return Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i, labels)


MIXED = [endpoint(0, "a"), endpoint(1, "b"), endpoint(2, "a"), endpoint(3, None)]


def test_picks_only_in_the_local_zone_when_it_has_endpoints() -> None:
    balancer = Locality(RoundRobin(), "a")
    assert {balancer.pick(MIXED).instance for _ in range(20)} == {"b-0", "b-2"}


def test_falls_back_to_every_endpoint_when_the_zone_is_empty() -> None:
    balancer = Locality(RoundRobin(), "c")
    assert [balancer.pick(MIXED).instance for _ in range(4)] == ["b-0", "b-1", "b-2", "b-3"]


def test_passes_the_key_to_the_inner_balancer() -> None:
    balancer = Locality(RingHash(random.Random(0)), "a")
    picks = {key: balancer.pick(MIXED, key).instance for key in ("k1", "k2", "k3", "k4", "k5")}
    assert set(picks.values()) <= {"b-0", "b-2"}
    assert all(balancer.pick(MIXED, key).instance == owner for key, owner in picks.items())


def test_feedback_reaches_an_inner_balancer_that_takes_it() -> None:
    inner = P2C(random.Random(1))
    balancer = Locality(inner, "a")
    ticket = balancer.begin(MIXED[0], 10)
    assert inner.inflight(MIXED[0]) == 1
    balancer.end(ticket, ok=True)
    assert inner.inflight(MIXED[0]) == 0


def test_feedback_is_a_no_op_for_an_inner_balancer_without_it() -> None:
    balancer = Locality(RoundRobin(), "a")
    ticket = balancer.begin(MIXED[0], 10)
    assert ticket == Ticket(MIXED[0], 10)
    balancer.end(ticket, ok=False)


def test_rejects_an_empty_zone() -> None:
    with pytest.raises(ValueError, match="zone"):
        Locality(RoundRobin(), "")


def test_no_endpoints() -> None:
    with pytest.raises(LookupError):
        Locality(RoundRobin(), "a").pick([])
