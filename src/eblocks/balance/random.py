"""Random: each pick is an endpoint drawn uniformly from the injected RNG.

Stateless apart from the RNG; with many independent callers it spreads load as
evenly as round robin without any caller coordinating with another.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from eblocks._types import Endpoint
from eblocks.balance.base import no_endpoints

__all__ = ["RandomChoice"]


class RandomChoice:
    """Picks uniformly at random; ``key`` is ignored."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        if not endpoints:
            raise no_endpoints()
        return endpoints[self._rng.randrange(len(endpoints))]
