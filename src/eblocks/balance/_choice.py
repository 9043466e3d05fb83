"""Power of two choices: the sampling step shared by the load-aware balancers.

Two distinct endpoints are drawn uniformly at random and the one with the lower
cost wins (the first drawn on a tie). Comparing two random endpoints instead of
scanning for the global minimum keeps every caller from herding onto the same
momentarily idle endpoint, yet bounds the worst load exponentially better than
one random choice (Mitzenmacher, 2001).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from eblocks._types import Endpoint
from eblocks.balance.base import no_endpoints

__all__ = ["two_choices"]

Cost = TypeVar("Cost", float, tuple[int, int])


def two_choices(
    endpoints: Sequence[Endpoint], rng: random.Random, cost: Callable[[Endpoint], Cost]
) -> Endpoint:
    """The cheaper of two distinct random endpoints (pure given ``rng`` and ``cost``)."""
    count = len(endpoints)
    if count == 0:
        raise no_endpoints()
    if count == 1:
        return endpoints[0]
    first = rng.randrange(count)
    second = rng.randrange(count - 1)
    if second >= first:  # skip ``first`` so the two are distinct
        second += 1
    a, b = endpoints[first], endpoints[second]
    return b if cost(b) < cost(a) else a
