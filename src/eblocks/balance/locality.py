"""Locality preference: pick among the endpoints in the caller's zone, if any.

A wrapper around another balancer. The endpoints whose ``zone`` label equals
the local zone are handed to the inner balancer; when none is ready there, all
endpoints are, so a zone that empties costs latency, never availability. State:
none of its own; `Feedback` hooks pass through to the inner balancer when it
takes them (and are a no-op otherwise), so the balance layer treats a wrapped
balancer exactly as the bare one.
"""

from __future__ import annotations

from collections.abc import Sequence

from eblocks._types import Endpoint
from eblocks.balance.base import Balancer, Feedback, Ticket

__all__ = ["ZONE_LABEL", "Locality"]

ZONE_LABEL = "zone"


class Locality:
    """Prefers endpoints labelled ``zone=<zone>``; falls back to all of them."""

    __slots__ = ("_feedback", "_inner", "_label", "_zone")

    def __init__(self, inner: Balancer, zone: str, *, label: str = ZONE_LABEL) -> None:
        if not zone:
            raise ValueError("Locality zone must be a non-empty zone name")
        self._inner = inner
        self._feedback = inner if isinstance(inner, Feedback) else None
        self._zone = zone
        self._label = label

    @property
    def inner(self) -> Balancer:
        return self._inner

    @property
    def zone(self) -> str:
        return self._zone

    def local(self, endpoints: Sequence[Endpoint]) -> list[Endpoint]:
        """The endpoints in the local zone (possibly none)."""
        return [ep for ep in endpoints if ep.labels.get(self._label) == self._zone]

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        return self._inner.pick(self.local(endpoints) or endpoints, key)

    def begin(self, endpoint: Endpoint, nbytes: int) -> Ticket:
        if self._feedback is None:
            return Ticket(endpoint, nbytes)
        return self._feedback.begin(endpoint, nbytes)

    def end(self, ticket: Ticket, ok: bool) -> None:
        if self._feedback is not None:
            self._feedback.end(ticket, ok)
