"""Round robin: each endpoint in turn, in a stable order."""

from __future__ import annotations

from collections.abc import Sequence

from eblocks._types import Endpoint

__all__ = ["RoundRobin"]


class RoundRobin:
    """Cycles through the endpoints; the order is the resolver's (stable) order.

    ``start`` is where the cycle begins: the factory gives each balancer a random
    one (as Envoy does per worker), so many short-lived callers — a CLI call is one
    client and one pick — do not all begin with the first instance.
    """

    __slots__ = ("_next",)

    def __init__(self, start: int = 0) -> None:
        self._next = start

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        if not endpoints:
            raise LookupError("no endpoints to pick from")
        index = self._next % len(endpoints)
        self._next = index + 1
        return endpoints[index]
