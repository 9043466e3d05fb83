"""Weighted random: an endpoint is picked with probability weight / total weight.

The weight is the endpoint's ``weight`` label (a non-negative number, 1 when
absent). A weight of 0 drains an endpoint; when every weight is 0 the pick
falls back to uniform, because an empty choice would fail the call. A label
that is not a finite non-negative number counts as the default weight: the
spec validates labels, and a typo must not fail requests at pick time.
State: only the injected RNG; the cumulative weights are rebuilt per pick, so a
changed label takes effect at once.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence

from eblocks._types import Endpoint
from eblocks.balance.base import no_endpoints

__all__ = ["DEFAULT_WEIGHT", "WEIGHT_LABEL", "Weighted", "weight_of"]

WEIGHT_LABEL = "weight"
DEFAULT_WEIGHT = 1.0


def weight_of(endpoint: Endpoint, label: str = WEIGHT_LABEL) -> float:
    """The endpoint's weight from its ``label``; the default when absent or malformed."""
    raw = endpoint.labels.get(label)
    if raw is None:
        return DEFAULT_WEIGHT
    try:
        weight = float(raw)
    except ValueError:
        return DEFAULT_WEIGHT
    return weight if math.isfinite(weight) and weight >= 0 else DEFAULT_WEIGHT


class Weighted:
    """Picks at random in proportion to each endpoint's weight label; ``key`` is ignored."""

    __slots__ = ("_label", "_rng")

    def __init__(self, rng: random.Random, label: str = WEIGHT_LABEL) -> None:
        self._rng = rng
        self._label = label

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        if not endpoints:
            raise no_endpoints()
        bounds = list(itertools.accumulate(weight_of(ep, self._label) for ep in endpoints))
        total = bounds[-1]
        if total <= 0:
            return endpoints[self._rng.randrange(len(endpoints))]
        # bisect_right skips zero-weight endpoints, whose bound equals the one before
        index = bisect.bisect_right(bounds, self._rng.random() * total)
        return endpoints[min(index, len(endpoints) - 1)]
