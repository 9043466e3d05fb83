"""Load balancers: pure pick functions over a list of endpoints."""

from collections.abc import Sequence
from typing import Protocol

from eblocks._types import Endpoint
from eblocks.balance.round_robin import RoundRobin

__all__ = ["Balancer", "RoundRobin"]


class Balancer(Protocol):
    """Chooses one endpoint; ``key`` is for consistent-hash balancers."""

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint: ...
