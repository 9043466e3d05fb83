"""Peak EWMA: two random endpoints, the one with the lower expected wait wins.

As Linkerd (and Finagle before it): each endpoint has a latency estimate
``rtt`` and a count of tries in flight, and costs ``rtt * (inflight + 1)``.
Per endpoint the state is ``(rtt, stamp, inflight)``:

- a finished try with latency ``sample`` at time ``now`` (``w = exp(-(now -
  stamp) / decay)``) sets ``rtt = sample`` if it is above the current estimate
  (peak-sensitive: a slow endpoint is avoided at once), else blends
  ``rtt = rtt * w + sample * (1 - w)``; then ``stamp = now``;
- read at ``now``, the estimate is ``rtt * w``: it decays towards 0 while no
  try finishes, so an endpoint once slow is tried again after a few ``decay``
  periods instead of being starved forever;
- an endpoint never measured costs ``default_rtt``; a failed try counts as at
  least ``failure_rtt`` so an endpoint that fails fast does not look fast.

Unlike Finagle, reading a cost does not count as a zero-latency sample, so
picks never change the estimate; only ``end`` does. Time comes from the
injected clock; the two candidates from the injected RNG.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from eblocks._types import Clock, Endpoint
from eblocks.balance._choice import two_choices
from eblocks.balance.base import Ticket, endpoint_key

__all__ = ["PeakEwma"]

# A cost decayed to zero would stop counting in-flight tries: keep a floor.
_MIN_RTT = 1e-6


@dataclass(slots=True)
class _Estimate:
    rtt: float
    stamp: float
    inflight: int = 0


class PeakEwma:
    """Power of two choices by ``decayed peak-EWMA latency * (inflight + 1)``."""

    __slots__ = ("_clock", "_decay", "_default_rtt", "_estimates", "_failure_rtt", "_rng")

    def __init__(
        self,
        rng: random.Random,
        clock: Clock,
        *,
        decay: float = 10.0,
        default_rtt: float = 0.030,
        failure_rtt: float = 1.0,
    ) -> None:
        for name, value in (("decay", decay), ("default_rtt", default_rtt)):
            if not value > 0:
                raise ValueError(f"PeakEwma {name} must be > 0 seconds, got {value}")
        if not failure_rtt >= 0:
            raise ValueError(f"PeakEwma failure_rtt must be >= 0 seconds, got {failure_rtt}")
        self._rng = rng
        self._clock = clock
        self._decay = decay
        self._default_rtt = default_rtt
        self._failure_rtt = failure_rtt
        self._estimates: dict[str, _Estimate] = {}

    def latency(self, endpoint: Endpoint) -> float:
        """The endpoint's latency estimate now, decayed since its last sample."""
        estimate = self._estimates.get(endpoint_key(endpoint))
        if estimate is None:
            return self._default_rtt
        return estimate.rtt * self._weight(estimate, self._clock.monotonic())

    def cost(self, endpoint: Endpoint) -> float:
        """``latency * (inflight + 1)``: what a new try would expect to wait."""
        estimate = self._estimates.get(endpoint_key(endpoint))
        inflight = estimate.inflight if estimate else 0
        return max(self.latency(endpoint), _MIN_RTT) * (inflight + 1)

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        if len(self._estimates) > 2 * len(endpoints) + 16:
            self._forget_idle(endpoints)
        return two_choices(endpoints, self._rng, self.cost)

    def begin(self, endpoint: Endpoint, nbytes: int) -> Ticket:
        now = self._clock.monotonic()
        name = endpoint_key(endpoint)
        estimate = self._estimates.get(name)
        if estimate is None:
            estimate = self._estimates[name] = _Estimate(self._default_rtt, now)
        estimate.inflight += 1
        return Ticket(endpoint, nbytes, now)

    def end(self, ticket: Ticket, ok: bool) -> None:
        estimate = self._estimates.get(endpoint_key(ticket.endpoint))
        if estimate is None:
            return  # not begun here
        now = self._clock.monotonic()
        sample = max(0.0, now - ticket.started)
        if not ok:
            sample = max(sample, self._failure_rtt)
        weight = self._weight(estimate, now)
        if sample > estimate.rtt * weight:
            estimate.rtt = sample
        else:
            estimate.rtt = estimate.rtt * weight + sample * (1.0 - weight)
        estimate.stamp = now
        estimate.inflight = max(0, estimate.inflight - 1)

    def _weight(self, estimate: _Estimate, now: float) -> float:
        return math.exp(-max(0.0, now - estimate.stamp) / self._decay)

    def _forget_idle(self, endpoints: Sequence[Endpoint]) -> None:
        # Endpoints that left the view keep no memory unless a try is still out.
        current = {endpoint_key(ep) for ep in endpoints}
        for name in [n for n, e in self._estimates.items() if n not in current and not e.inflight]:
            del self._estimates[name]
