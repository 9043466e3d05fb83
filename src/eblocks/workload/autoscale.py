"""The autoscale policy of a manager-worker pool: a pure function from load to worker count.

Each tick the manager samples its load (tasks running on workers plus tasks
queued) and asks `decide` how many workers the pool should have::

    raw     = ceil(max(load, forecast) / target_inflight), clamped to [min, max]
    up      = the lowest raw count of the last scale_up_delay seconds (this one included)
    down    = the highest raw count of the last scale_down_delay seconds (this one included)
              (a window that reaches back before the first sample also holds the
              current count: no change before a whole window has been seen)
    desired = up    if up > current      (grow: at once with the default delay 0)
            = down  if down < current    (shrink: only after the load stayed low)
            = current otherwise

This is the stabilisation window of Kubernetes' Horizontal Pod Autoscaler: a
pool grows as soon as the load asks for it and shrinks only when every
recommendation over the window agrees, so a short lull does not retire a
worker the next burst needs. With ``forecast: holt`` the load is also
extrapolated ``horizon`` seconds ahead by Holt's linear trend, so a rising
load starts workers before the queue shows it; the forecast only ever raises
the count (a falling trend never shrinks the pool faster than the load does).

Nothing here reads a clock or sleeps: the caller passes ``now`` and keeps the
returned `ScaleState` for the next tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eblocks.spec.models import WorkersSpec

__all__ = [
    "HOLT_ALPHA",
    "HOLT_BETA",
    "Decision",
    "Load",
    "ScaleState",
    "Trend",
    "decide",
    "holt",
    "recommend",
]

HOLT_ALPHA = 0.5
"""Weight of a new sample in the level (higher: follows the load faster)."""
HOLT_BETA = 0.3
"""Weight of a new slope in the trend (higher: believes a change of pace sooner)."""


@dataclass(frozen=True, slots=True)
class Load:
    """One sample of a pool's load, as the manager sees it at ``now``."""

    now: float
    inflight: int  # tasks holding a worker slot
    queued: int  # tasks waiting for a slot
    current: int  # workers the pool has (or has been asked to have)

    @property
    def total(self) -> int:
        return self.inflight + self.queued


@dataclass(frozen=True, slots=True)
class Trend:
    """Holt's linear trend of the load: a level and a slope per second at time ``at``."""

    level: float
    slope: float
    at: float

    def forecast(self, ahead: float) -> float:
        return max(0.0, self.level + self.slope * ahead)


@dataclass(frozen=True, slots=True)
class ScaleState:
    """What the policy remembers between ticks: recent recommendations and the trend."""

    history: tuple[tuple[float, int], ...] = ()
    trend: Trend | None = None
    since: float | None = None  # the first sample: a window reaching before it is not full


@dataclass(frozen=True, slots=True)
class Decision:
    """The count the pool should have now, why, and the state for the next tick."""

    desired: int
    raw: int  # what this sample alone asks for
    forecast: float  # the load expected ``horizon`` ahead (the sample itself without a forecast)
    state: ScaleState


def recommend(load: float, target: float, low: int, high: int) -> int:
    """Workers for ``load`` at ``target`` tasks each, within [low, high] (pure)."""
    if target <= 0:
        raise ValueError(f"target must be > 0, got {target}")
    return max(low, min(high, math.ceil(load / target - 1e-9)))


def holt(
    trend: Trend | None,
    value: float,
    now: float,
    *,
    alpha: float = HOLT_ALPHA,
    beta: float = HOLT_BETA,
) -> Trend:
    """Update Holt's linear trend with ``value`` sampled at ``now`` (irregular steps allowed)."""
    if trend is None:
        return Trend(float(value), 0.0, now)
    dt = now - trend.at
    if dt <= 0:
        return trend  # same instant (or a clock step back): nothing new to learn
    predicted = trend.level + trend.slope * dt
    level = alpha * value + (1 - alpha) * predicted
    slope = beta * (level - trend.level) / dt + (1 - beta) * trend.slope
    return Trend(level, slope, now)


def decide(policy: WorkersSpec, target: float, state: ScaleState, load: Load) -> Decision:
    """The pool's desired worker count for ``load`` (pure; see the module docstring)."""
    trend = holt(state.trend, load.total, load.now) if policy.forecast == "holt" else None
    expected = trend.forecast(policy.horizon) if trend is not None else float(load.total)
    raw = recommend(max(load.total, expected), target, policy.min, policy.max)
    keep = max(policy.scale_up_delay, policy.scale_down_delay)
    history = (*(h for h in state.history if h[0] >= load.now - keep), (load.now, raw))
    since = load.now if state.since is None else state.since
    current = max(policy.min, min(policy.max, load.current))
    up = min(_window(history, load.now - policy.scale_up_delay))
    if since > load.now - policy.scale_up_delay:
        up = min(up, current)
    down = max(_window(history, load.now - policy.scale_down_delay))
    if since > load.now - policy.scale_down_delay:
        down = max(down, current)
    if up > current:
        desired = up
    elif down < current:
        desired = down
    else:
        desired = current
    return Decision(desired, raw, expected, ScaleState(history, trend, since))


def _window(history: tuple[tuple[float, int], ...], after: float) -> list[int]:
    """The counts sampled after ``after``, and always the newest one."""
    return [n for t, n in history[:-1] if t > after] + [history[-1][1]]
