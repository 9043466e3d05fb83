"""Outlier detection: a circuit breaker per endpoint, as Envoy's, with half-open probing.

Each endpoint of a target has a breaker; the balance layer asks `Detector.admit`
for the endpoints a try may use and reports each try's outcome to
`Detector.outcome`. An endpoint is ejected (its breaker opens) when

* ``consecutive_failures`` tries in a row failed on it, or
* every ``interval``, its success rate is below ``mean - success_rate_stdev x
  stdev`` of the rates of the endpoints that had ``success_rate_min_requests``
  tries in the interval — judged only when at least ``success_rate_min_hosts``
  endpoints had them,

but never when that would leave more than ``max_ejected_percent`` of the
endpoints ejected (open or half-open). The n-th ejection lasts ``base_ejection``
x n (at most `MAX_EJECTION`, or ``base_ejection`` when that is longer). When it
has passed, the next try is sent to that endpoint alone: that probe's success
closes the breaker, its failure opens it again for longer. When every endpoint
is ejected, the try fails at once with `CircuitOpenError` (``circuit_open``).

`Detector` is pure given its `Clock`; `Detectors.current` gives the balance
layer the detector of the target's current rule (None without one), whose
state is kept across policy versions while that rule is unchanged.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Sequence

from eblocks._types import Clock, Endpoint
from eblocks.errors import CircuitOpenError
from eblocks.policies import LivePolicies, PolicyState
from eblocks.spec.policies import Outlier

__all__ = ["MAX_EJECTION", "Breaker", "Detector", "Detectors"]

MAX_EJECTION = 300.0
"""The longest ejection (seconds) unless ``base_ejection`` is longer, as Envoy's default."""


class Breaker(enum.Enum):
    """The state of one endpoint's breaker::

    CLOSED --(failures in a row, or a low success rate; within the max share)--> OPEN
    OPEN --(ejection over; the next try probes it)--> HALF_OPEN
    HALF_OPEN --(probe succeeded)--> CLOSED
    HALF_OPEN --(probe failed)--> OPEN (longer)
    HALF_OPEN --(probe cancelled)--> OPEN (probe again on the next try)
    """

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class _Host:
    __slots__ = ("ejections", "failures", "ok", "state", "total", "until")

    def __init__(self) -> None:
        self.state = Breaker.CLOSED
        self.failures = 0  # in a row
        self.ok = 0  # in the current interval
        self.total = 0
        self.ejections = 0
        self.until = 0.0


class Detector:
    """The breakers of one target's endpoints under one `Outlier` rule."""

    __slots__ = ("_clock", "_ejected", "_hosts", "_judge_at", "_known", "ejections", "rule")

    def __init__(self, rule: Outlier, clock: Clock) -> None:
        self.rule = rule
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._ejected = 0  # hosts open or half-open
        self._known = 0  # endpoints the target had at the last admit
        self._judge_at = clock.monotonic() + rule.interval
        self.ejections = 0  # breakers opened, in all

    def admit(self, endpoints: Sequence[Endpoint]) -> Sequence[Endpoint]:
        """The endpoints a try may use: all but the ejected, or one due for its probe."""
        now = self._clock.monotonic()
        self._known = len(endpoints)
        if now >= self._judge_at:
            self._judge(now, endpoints)
        if not self._ejected:
            return endpoints
        admitted: list[Endpoint] = []
        for endpoint in endpoints:
            host = self._hosts.get(endpoint.instance)
            if host is None or host.state is Breaker.CLOSED:
                admitted.append(endpoint)
            elif host.state is Breaker.OPEN and now >= host.until:
                host.state = Breaker.HALF_OPEN
                return (endpoint,)  # the probe
        if not admitted:
            raise CircuitOpenError(
                f"every endpoint of {endpoints[0].block!r} is ejected by outlier detection",
                detail={"target": endpoints[0].block, "ejected": len(endpoints)},
            )
        return admitted

    def outcome(self, endpoint: Endpoint, ok: bool | None) -> None:
        """A try on ``endpoint`` ended: succeeded, failed, or None (cancelled: no verdict)."""
        host = self._hosts.get(endpoint.instance)
        if host is None:
            host = self._hosts[endpoint.instance] = _Host()
        if ok is None:
            if host.state is Breaker.HALF_OPEN:
                host.state = Breaker.OPEN  # `until` has passed: the next try probes again
            return
        host.total += 1
        if ok:
            host.ok += 1
            host.failures = 0
            if host.state is Breaker.HALF_OPEN:
                host.state = Breaker.CLOSED
                self._ejected -= 1
            return
        host.failures += 1
        now = self._clock.monotonic()
        if host.state is Breaker.HALF_OPEN:
            self._open(host, now)
        elif host.state is Breaker.CLOSED:
            limit = self.rule.consecutive_failures
            if limit is not None and host.failures >= limit and self._may_eject():
                self._ejected += 1
                self._open(host, now)

    def states(self) -> Iterator[tuple[str, Breaker]]:
        """(instance, breaker state) of every endpoint heard of, by instance."""
        for instance in sorted(self._hosts):
            yield instance, self._hosts[instance].state

    def _may_eject(self) -> bool:
        return self._ejected + 1 <= self._known * self.rule.max_ejected_percent / 100

    def _open(self, host: _Host, now: float) -> None:
        self.ejections += 1
        host.ejections += 1
        host.failures = 0
        host.state = Breaker.OPEN
        longest = max(MAX_EJECTION, self.rule.base_ejection)
        host.until = now + min(longest, self.rule.base_ejection * host.ejections)

    def _judge(self, now: float, endpoints: Sequence[Endpoint]) -> None:
        """The success-rate check of the interval that ended; then a new interval."""
        rule = self.rule
        self._judge_at = now + rule.interval
        present = {e.instance for e in endpoints}
        for gone in [i for i, h in self._hosts.items() if i not in present]:
            if self._hosts.pop(gone).state is not Breaker.CLOSED:
                self._ejected -= 1
        judged = [
            h
            for h in self._hosts.values()
            if h.state is Breaker.CLOSED and h.total >= rule.success_rate_min_requests
        ]
        if rule.success_rate_stdev is not None and len(judged) >= rule.success_rate_min_hosts:
            rates = [h.ok / h.total for h in judged]
            mean = math.fsum(rates) / len(rates)
            stdev = math.sqrt(math.fsum((r - mean) ** 2 for r in rates) / len(rates))
            threshold = mean - rule.success_rate_stdev * stdev
            for rate, host in sorted(zip(rates, judged, strict=True), key=lambda p: p[0]):
                if rate < threshold and self._may_eject():
                    self._ejected += 1
                    self._open(host, now)
        for host in self._hosts.values():
            host.ok = host.total = 0


class Detectors:
    """The `Detector` of calls to one target under the policies in force (or none)."""

    __slots__ = ("_clock", "_detector", "_live", "_past", "_state", "_target")

    def __init__(self, live: LivePolicies, target: str, clock: Clock) -> None:
        self._live = live
        self._target = target
        self._clock = clock
        self._state: PolicyState | None = None  # the version the detector was looked up in
        self._detector: Detector | None = None
        self._past = 0  # ejections by the detectors of earlier rules

    @property
    def ejections(self) -> int:
        """Breakers opened for this target, under every rule so far."""
        return self._past + (self._detector.ejections if self._detector is not None else 0)

    def current(self) -> Detector | None:
        """The detector of the rule in force (the balance layer's guard), or None."""
        state = self._live.current
        if state is self._state:
            return self._detector  # the common case: the same version, one identity test
        self._state = state
        rule = state.block(self._target).outlier
        detector = self._detector
        if detector is None and rule is None:
            return None
        if detector is not None and rule is detector.rule:
            return detector  # the common case: compared by identity, no model comparison
        if detector is not None and rule == detector.rule:
            detector.rule = rule  # an equal rule of a newer version: the state stays
            return detector
        if detector is not None:
            self._past += detector.ejections
        # a new rule: its breakers start closed
        self._detector = Detector(rule, self._clock) if rule is not None else None
        return self._detector

    def states(self) -> Iterator[tuple[str, Breaker]]:
        detector = self._detector
        return iter(()) if detector is None else detector.states()
