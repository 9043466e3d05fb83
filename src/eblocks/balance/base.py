"""The two contracts of a balancer: choosing an endpoint, and (optionally) learning.

Every balancer is a :class:`Balancer`: ``pick(endpoints, key)`` chooses one of
the endpoints it is given, raising `LookupError` when there are none.
Balancers that weigh endpoints by what they are doing now (in-flight tries,
bytes assigned, latency) are also :class:`Feedback`: whoever sends the try
calls ``begin`` when it starts and ``end`` exactly once when it finishes::

    endpoint = balancer.pick(endpoints, key)
    ticket = balancer.begin(endpoint, len(body))   # only if isinstance(balancer, Feedback)
    ...send...
    balancer.end(ticket, ok=answered)

The ticket remembers the endpoint, the bytes and the start time on the
balancer's own clock, so the balancer measures the latency itself and callers
need no clock. Round robin, random, weighted and the consistent-hash balancers
are not `Feedback`; the balance layer skips the hooks for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from eblocks._types import Endpoint

__all__ = ["Balancer", "Feedback", "Ticket", "endpoint_key", "no_endpoints"]


class Balancer(Protocol):
    """Chooses one endpoint; ``key`` is for consistent-hash balancers."""

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint: ...


@dataclass(frozen=True, slots=True)
class Ticket:
    """One try in progress, as a `Feedback` balancer handed it out in ``begin``.

    ``started`` is on the issuing balancer's clock (0.0 when it keeps none).
    """

    endpoint: Endpoint
    nbytes: int = 0
    started: float = 0.0


@runtime_checkable
class Feedback(Protocol):
    """A balancer that learns from the tries sent to the endpoints it picked."""

    def begin(self, endpoint: Endpoint, nbytes: int) -> Ticket:
        """A try of ``nbytes`` request bytes starts on ``endpoint``."""
        ...

    def end(self, ticket: Ticket, ok: bool) -> None:
        """The try of ``ticket`` finished; ``ok`` is False when the endpoint failed it."""
        ...


def endpoint_key(endpoint: Endpoint) -> str:
    """The identity balancers track and hash an endpoint by.

    The instance name, not the address: an instance restarted on a new port
    (instances bind port 0) keeps its keys and its history.
    """
    return f"{endpoint.block}/{endpoint.instance}"


def no_endpoints() -> LookupError:
    """The error every balancer raises when it is given nothing to pick from."""
    return LookupError("no endpoints to pick from")
