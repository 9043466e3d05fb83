"""Two choices by assigned bytes: the less loaded of two random endpoints.

The balancer of the Eblocks authors' earlier system: an endpoint's load is the
sum of the request bytes of the tries now in flight to it, a better proxy for
the work of document-sized messages than a count of requests. State: per
endpoint, the bytes assigned and the tries in flight, kept through the
`Feedback` hooks and dropped when the endpoint goes idle. Two distinct
endpoints are drawn from the injected RNG; fewer bytes wins, then fewer tries
(so empty bodies still spread), then the first drawn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from eblocks._types import Endpoint
from eblocks.balance._choice import two_choices
from eblocks.balance.base import Ticket, endpoint_key

__all__ = ["P2CBytes"]


class P2CBytes:
    """Power of two choices by bytes assigned, then tries in flight; ``key`` is ignored."""

    __slots__ = ("_load", "_rng")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._load: dict[str, tuple[int, int]] = {}  # endpoint -> (bytes, tries)

    def assigned(self, endpoint: Endpoint) -> tuple[int, int]:
        """(bytes, tries) now in flight to ``endpoint``."""
        return self._load.get(endpoint_key(endpoint), (0, 0))

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        return two_choices(endpoints, self._rng, self.assigned)

    def begin(self, endpoint: Endpoint, nbytes: int) -> Ticket:
        nbytes = max(0, nbytes)
        name = endpoint_key(endpoint)
        load, tries = self._load.get(name, (0, 0))
        self._load[name] = (load + nbytes, tries + 1)
        return Ticket(endpoint, nbytes)

    def end(self, ticket: Ticket, ok: bool) -> None:
        name = endpoint_key(ticket.endpoint)
        load, tries = self._load.get(name, (0, 0))
        if tries > 1:
            self._load[name] = (max(0, load - ticket.nbytes), tries - 1)
        else:
            self._load.pop(name, None)
