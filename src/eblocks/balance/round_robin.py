"""Round robin: each endpoint in turn, in a stable order."""

from __future__ import annotations

from collections.abc import Sequence

from eblocks._types import Endpoint

__all__ = ["RoundRobin"]


class RoundRobin:
    """Cycles through the endpoints; the order is the resolver's (stable) order."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        if not endpoints:
            raise LookupError("no endpoints to pick from")
        index = self._next % len(endpoints)
        self._next = index + 1
        return endpoints[index]
