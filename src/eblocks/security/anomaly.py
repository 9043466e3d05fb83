"""Anomaly detection and dynamic trust per source identity (pure; the clock is injected).

Each source (a SPIFFE ID, or ``addr:<ip>`` for a plaintext caller) has
one-second buckets over a sliding ``window``: requests, authentication
failures, denials and errors. A source is quarantined when, inside the window,

- authentication failures reach ``max_auth_failures``, or
- denials reach ``max_denials``, or
- errors are at least ``max_error_ratio`` of at least ``min_requests`` requests, or
- (with ``rate_factor`` set) its request rate over the last second exceeds
  ``rate_factor`` x its EWMA baseline and ``min_rate``.

States of one source::

    TRUSTED --threshold crossed--> QUARANTINED --cooldown--> READMITTING --readmit--> TRUSTED
                                         ^                        |
                                         +---threshold crossed----+

While READMITTING a growing share of its requests is let through (0 -> 100 %
over ``readmit`` seconds). ``trust`` is 1.0 for a clean source, falls towards 0
as it nears a threshold, is 0 in quarantine and climbs back while readmitted.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from eblocks.spec.models import AnomalySpec

__all__ = ["AnomalyDetector", "SourceState", "TrustState"]


class TrustState(enum.Enum):
    TRUSTED = "trusted"
    QUARANTINED = "quarantined"
    READMITTING = "readmitting"


@dataclass(slots=True)
class SourceState:
    """What the detector remembers about one source."""

    buckets: dict[int, list[int]] = field(default_factory=dict)  # second -> [req, auth, deny, err]
    totals: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # the buckets' sums
    state: TrustState = TrustState.TRUSTED
    since: float = 0.0  # when the current state began
    ewma: float = 0.0
    seconds_seen: int = 0
    last_second: int = -1
    reason: str = ""
    quarantines: int = 0


_REQ, _AUTH, _DENY, _ERR = range(4)


class AnomalyDetector:
    """Sliding-window statistics per source and the quarantine decisions."""

    def __init__(
        self,
        spec: AnomalySpec,
        *,
        now: Callable[[], float],
        rng: random.Random | None = None,
        on_quarantine: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self._now = now
        self._rng = rng or random.Random()
        self._on_quarantine = on_quarantine
        self.sources: dict[str, SourceState] = {}

    def allow(self, source: str) -> tuple[bool, float]:
        """May ``source`` be served now, and its trust score."""
        state = self.sources.get(source)
        if state is None:
            return True, 1.0
        if state.state is TrustState.TRUSTED:
            return True, self._trusted(state)
        now = self._now()
        spec = self.spec
        if state.state is TrustState.QUARANTINED:
            if now - state.since < spec.cooldown:
                return False, 0.0
            state.state, state.since = TrustState.READMITTING, now
            state.buckets.clear()
            state.totals = [0, 0, 0, 0]
        share = min(1.0, (now - state.since) / spec.readmit) if spec.readmit > 0 else 1.0
        if share >= 1.0:
            state.state, state.since = TrustState.TRUSTED, now
            return True, 1.0
        return self._rng.random() < share, share

    def record(self, source: str, *, auth_failure: bool = False, denied: bool = False,
               error: bool = False) -> None:  # fmt: skip
        """Count one request of ``source`` and its outcome; quarantine on a crossed threshold."""
        now = self._now()
        state = self.sources.get(source)
        if state is None:
            if len(self.sources) >= self.spec.max_sources:
                self._forget_idle(now)
            state = self.sources[source] = SourceState()
        second = int(now)
        if second != state.last_second:
            self._roll(state, second)
        bucket = state.buckets.get(second)
        if bucket is None:
            bucket = state.buckets[second] = [0, 0, 0, 0]
        bucket[_REQ] += 1
        bucket[_AUTH] += auth_failure
        bucket[_DENY] += denied
        bucket[_ERR] += error
        totals = state.totals
        totals[_REQ] += 1
        totals[_AUTH] += auth_failure
        totals[_DENY] += denied
        totals[_ERR] += error
        if state.state is TrustState.QUARANTINED:
            return
        if not (auth_failure or denied or error or self.spec.rate_factor is not None):
            return  # a clean request cannot cross a count threshold: skip the window sums
        why = self._verdict(state, bucket)
        if why:
            self._quarantine(source, state, why, now)

    def trust(self, source: str) -> float:
        state = self.sources.get(source)
        if state is None:
            return 1.0
        if state.state is TrustState.QUARANTINED:
            return 0.0
        if state.state is TrustState.READMITTING:
            return min(1.0, (self._now() - state.since) / max(self.spec.readmit, 1e-9))
        return self._trusted(state)

    def _trusted(self, state: SourceState) -> float:
        """The trust score of a source that is not quarantined: 1 less its nearest pressure."""
        if not (state.totals[_AUTH] or state.totals[_DENY]):
            return 1.0  # nothing held against it anywhere in its buckets: no window to sum
        totals = self._totals(state)
        spec = self.spec
        pressure = max(totals[_AUTH] / spec.max_auth_failures, totals[_DENY] / spec.max_denials)
        return max(0.0, 1.0 - pressure)

    def quarantined(self) -> dict[str, str]:
        return {
            s: st.reason for s, st in self.sources.items() if st.state is TrustState.QUARANTINED
        }

    def _verdict(self, state: SourceState, bucket: list[int]) -> str:
        spec = self.spec
        totals = self._totals(state)
        if totals[_AUTH] >= spec.max_auth_failures:
            return f"{totals[_AUTH]} authentication failures in {spec.window:g}s"
        if totals[_DENY] >= spec.max_denials:
            return f"{totals[_DENY]} denials in {spec.window:g}s"
        if (
            spec.max_error_ratio is not None
            and totals[_REQ] >= spec.min_requests
            and totals[_ERR] >= spec.max_error_ratio * totals[_REQ]
        ):
            return f"error ratio {totals[_ERR] / totals[_REQ]:.2f} over {totals[_REQ]} requests"
        if (
            spec.rate_factor is not None
            and state.seconds_seen >= spec.baseline_seconds
            and bucket[_REQ] > spec.min_rate
            and bucket[_REQ] > spec.rate_factor * state.ewma
        ):
            return f"{bucket[_REQ]} req/s against a baseline of {state.ewma:.1f}"
        return ""

    def _quarantine(self, source: str, state: SourceState, why: str, now: float) -> None:
        state.state, state.since, state.reason = TrustState.QUARANTINED, now, why
        state.quarantines += 1
        if self._on_quarantine is not None:
            self._on_quarantine(source, why)

    def _roll(self, state: SourceState, second: int) -> None:
        """A new second began: fold the finished ones into the EWMA, drop what left the window."""
        if state.last_second >= 0:
            finished = state.buckets.get(state.last_second)
            rate = finished[_REQ] if finished else 0
            idle = min(second - state.last_second - 1, 60)
            alpha = self.spec.ewma_alpha
            state.ewma = alpha * rate + (1 - alpha) * state.ewma
            for _ in range(idle):
                state.ewma *= 1 - alpha
            state.seconds_seen += 1 + idle
        state.last_second = second
        oldest = second - int(self.spec.window) + 1
        totals = state.totals
        for old in [s for s in state.buckets if s < oldest]:
            gone = state.buckets.pop(old)
            for i in range(4):
                totals[i] -= gone[i]

    def _totals(self, state: SourceState) -> list[int]:
        """The sums over the window ending now (rolling the window first if a second passed)."""
        second = int(self._now())
        if second > state.last_second:
            self._roll(state, second)
        return state.totals

    def _forget_idle(self, now: float) -> None:
        horizon = int(now) - int(self.spec.window)
        for source in [
            s
            for s, st in self.sources.items()
            if st.state is TrustState.TRUSTED and st.last_second < horizon
        ]:
            del self.sources[source]
