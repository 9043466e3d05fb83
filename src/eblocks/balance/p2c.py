"""Least in-flight, power of two choices: the less busy of two random endpoints.

State: the number of tries in flight per endpoint, counted through the
`Feedback` hooks (``begin`` adds one, ``end`` takes it away). An endpoint with
nothing in flight has no entry, so the table never outgrows the busy
endpoints. Two distinct endpoints are drawn from the injected RNG and the one
with fewer tries in flight wins, as Ray Serve's and Linkerd's P2C routers do.
Without feedback every count stays 0 and the pick is uniformly random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from eblocks._types import Endpoint
from eblocks.balance._choice import two_choices
from eblocks.balance.base import Ticket, endpoint_key

__all__ = ["P2C"]


class P2C:
    """Power of two choices by tries in flight; ``key`` is ignored."""

    __slots__ = ("_inflight", "_rng")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._inflight: dict[str, int] = {}

    def inflight(self, endpoint: Endpoint) -> int:
        """Tries now in flight to ``endpoint``."""
        return self._inflight.get(endpoint_key(endpoint), 0)

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        return two_choices(endpoints, self._rng, self.inflight)

    def begin(self, endpoint: Endpoint, nbytes: int) -> Ticket:
        name = endpoint_key(endpoint)
        self._inflight[name] = self._inflight.get(name, 0) + 1
        return Ticket(endpoint, nbytes)

    def end(self, ticket: Ticket, ok: bool) -> None:
        name = endpoint_key(ticket.endpoint)
        left = self._inflight.get(name, 0) - 1
        if left > 0:
            self._inflight[name] = left
        else:
            self._inflight.pop(name, None)
