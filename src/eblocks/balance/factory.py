"""Build a balancer from its name in the spec.

One place maps the names a spec may use (`BalancerName`) to the classes, with
the RNG and clock injected; ``locality`` wraps the result in `Locality` when
the local zone is known. Without a zone (a single machine, say) there is
nothing to prefer, and the bare balancer already falls back to all endpoints.
"""

from __future__ import annotations

import random
from typing import Literal, get_args

from eblocks._types import Clock
from eblocks.balance.base import Balancer
from eblocks.balance.ewma import PeakEwma
from eblocks.balance.locality import Locality
from eblocks.balance.maglev import Maglev
from eblocks.balance.p2c import P2C
from eblocks.balance.p2c_bytes import P2CBytes
from eblocks.balance.random import RandomChoice
from eblocks.balance.ring_hash import RingHash
from eblocks.balance.round_robin import RoundRobin
from eblocks.balance.weighted import Weighted

__all__ = ["BALANCER_NAMES", "BalancerName", "make_balancer"]

BalancerName = Literal[
    "round_robin", "random", "weighted", "p2c", "p2c_bytes", "ewma", "ring_hash", "maglev"
]
BALANCER_NAMES: tuple[BalancerName, ...] = get_args(BalancerName)


def make_balancer(
    name: BalancerName | str,
    *,
    rng: random.Random,
    clock: Clock,
    zone: str | None = None,
    locality: bool = False,
) -> Balancer:
    """A new balancer called ``name``; with ``locality``, preferring ``zone``.

    Raises `ValueError` naming the valid names when ``name`` is unknown.
    """
    balancer = _bare(name, rng, clock)
    if locality and zone:
        return Locality(balancer, zone)
    return balancer


def _bare(name: str, rng: random.Random, clock: Clock) -> Balancer:
    match name:
        case "round_robin":
            return RoundRobin(rng.randrange(1 << 16))
        case "random":
            return RandomChoice(rng)
        case "weighted":
            return Weighted(rng)
        case "p2c":
            return P2C(rng)
        case "p2c_bytes":
            return P2CBytes(rng)
        case "ewma":
            return PeakEwma(rng, clock)
        case "ring_hash":
            return RingHash(rng)
        case "maglev":
            return Maglev(rng)
    valid = ", ".join(BALANCER_NAMES)
    raise ValueError(f"unknown balancer {name!r}; expected one of: {valid}")
