"""make_balancer: every name in the spec's vocabulary builds its balancer."""

from __future__ import annotations

import random
from typing import get_args

import pytest

from eblocks._types import Endpoint
from eblocks.balance import (
    BALANCER_NAMES,
    P2C,
    BalancerName,
    Feedback,
    Locality,
    Maglev,
    P2CBytes,
    PeakEwma,
    RandomChoice,
    RingHash,
    RoundRobin,
    Weighted,
    make_balancer,
)
from eblocks.testing import FakeClock

EXPECTED: dict[str, type] = {
    "round_robin": RoundRobin,
    "random": RandomChoice,
    "weighted": Weighted,
    "p2c": P2C,
    "p2c_bytes": P2CBytes,
    "ewma": PeakEwma,
    "ring_hash": RingHash,
    "maglev": Maglev,
}
LOAD_AWARE = {"p2c", "p2c_bytes", "ewma"}


def build(name: str, **options: object) -> object:
    return make_balancer(name, rng=random.Random(0), clock=FakeClock(), **options)  # type: ignore[arg-type]


def test_names_are_the_literal_type_and_all_covered() -> None:
    assert get_args(BalancerName) == BALANCER_NAMES
    assert set(BALANCER_NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_builds_the_balancer_of_each_name(name: str) -> None:
    balancer = build(name)
    assert type(balancer) is EXPECTED[name]
    assert isinstance(balancer, Feedback) == (name in LOAD_AWARE)


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_every_balancer_picks_one_of_its_endpoints_and_refuses_none(name: str) -> None:
    balancer = make_balancer(name, rng=random.Random(0), clock=FakeClock())
    eps = [Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i) for i in range(3)]
    assert balancer.pick(eps, "doc-1") in eps
    with pytest.raises(LookupError):
        balancer.pick([], "doc-1")


def test_locality_wraps_when_the_zone_is_known() -> None:
    balancer = build("p2c", zone="eu-1", locality=True)
    assert isinstance(balancer, Locality)
    assert isinstance(balancer.inner, P2C)
    assert balancer.zone == "eu-1"


@pytest.mark.parametrize("options", [{"zone": "eu-1"}, {"locality": True}, {}])
def test_no_locality_without_both_the_option_and_a_zone(options: dict[str, object]) -> None:
    assert isinstance(build("round_robin", **options), RoundRobin)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown balancer 'least_conn'.*round_robin.*maglev"):
        build("least_conn")
