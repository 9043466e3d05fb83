"""The autoscale policy: pure decisions on an injected time line, no sleeping."""

from __future__ import annotations

import pytest

from eblocks.errors import SpecError
from eblocks.spec import parse_spec
from eblocks.spec.models import ManagerWorker, WorkersSpec
from eblocks.workload.autoscale import Decision, Load, ScaleState, decide, holt, recommend


def _run(
    policy: WorkersSpec,
    samples: list[tuple[float, int]],
    *,
    target: float = 2.0,
    start: int = 1,
) -> list[int]:
    """Feed (time, load) samples; the pool follows each decision at once. Returns the counts."""
    state, current, counts = ScaleState(), start, []
    for now, load in samples:
        decision = decide(policy, target, state, Load(now, load, 0, current))
        state, current = decision.state, decision.desired
        counts.append(current)
    return counts


def test_recommend_is_ceil_of_load_over_target_within_bounds() -> None:
    assert recommend(0, 2, 1, 4) == 1
    assert recommend(1, 2, 1, 4) == 1
    assert recommend(2, 2, 1, 4) == 1
    assert recommend(3, 2, 1, 4) == 2
    assert recommend(8, 2, 1, 4) == 4
    assert recommend(100, 2, 1, 4) == 4
    assert recommend(0, 2, 3, 4) == 3
    assert recommend(6, 1.5, 1, 10) == 4  # exactly 4.0: no float rounding up to 5
    with pytest.raises(ValueError, match="target must be > 0"):
        recommend(1, 0, 1, 4)


def test_queued_tasks_count_like_running_ones() -> None:
    policy = WorkersSpec(min=1, max=8)
    decision = decide(policy, 2.0, ScaleState(), Load(0.0, inflight=2, queued=5, current=1))
    assert decision.raw == 4
    assert decision.desired == 4


def test_scale_up_is_immediate_scale_down_waits_for_the_window() -> None:
    policy = WorkersSpec(min=1, max=4, scale_down_delay=10)
    # load 8 at t=0 (4 workers), then idle from t=1 on
    samples = [(0.0, 8)] + [(float(t), 0) for t in range(1, 14)]
    counts = _run(policy, samples)
    assert counts[0] == 4  # at once
    # every recommendation within the last 10 s must agree before shrinking
    assert counts[1:10] == [4] * 9  # t=1..9: the t=0 sample is still in the window
    assert counts[10] == 1  # t=10: the window (0, 10] holds only idle samples
    assert counts[11:] == [1, 1, 1]


def test_a_short_lull_does_not_shrink_the_pool() -> None:
    policy = WorkersSpec(min=1, max=4, scale_down_delay=5)
    samples = [(0.0, 6), (1.0, 0), (2.0, 0), (3.0, 6), (4.0, 0), (5.0, 0), (6.0, 0)]
    assert _run(policy, samples) == [3, 3, 3, 3, 3, 3, 3]


def test_scale_down_goes_to_the_highest_count_of_the_window() -> None:
    policy = WorkersSpec(min=1, max=8, scale_down_delay=3)
    samples = [(0.0, 16), (1.0, 8), (2.0, 4), (3.0, 2), (4.0, 2), (5.0, 2), (6.0, 2)]
    # raw counts 8, 4, 2, 1, 1, 1, 1; the window (t-3, t] holds three samples
    assert _run(policy, samples) == [8, 8, 8, 4, 2, 1, 1]


def test_scale_up_delay_needs_the_higher_count_to_hold() -> None:
    policy = WorkersSpec(min=1, max=4, scale_up_delay=2, scale_down_delay=0)
    samples = [(0.0, 8), (1.0, 8), (2.0, 8), (3.0, 0)]
    # a spike must last scale_up_delay: the lowest recommendation of the window wins
    assert _run(policy, samples) == [1, 1, 4, 1]
    spike = [(0.0, 8), (1.0, 0), (2.0, 8), (3.0, 0)]
    assert _run(policy, spike) == [1, 1, 1, 1]


def test_no_scale_down_before_a_whole_window_was_seen() -> None:
    policy = WorkersSpec(min=1, max=4, scale_down_delay=5)
    # a manager that (re)starts idle beside a pool of 4 keeps it for one window
    counts = _run(policy, [(float(t), 0) for t in range(7)], start=4)
    assert counts == [4, 4, 4, 4, 4, 1, 1]


def test_counts_stay_within_min_and_max_even_from_outside() -> None:
    policy = WorkersSpec(min=2, max=3, scale_down_delay=0)
    assert _run(policy, [(0.0, 0)], start=0) == [2]  # a pool below min is raised
    assert _run(policy, [(0.0, 0)], start=7) == [2]  # a pool above max comes down
    assert _run(policy, [(0.0, 100)]) == [3]


def test_history_keeps_only_the_longest_window() -> None:
    policy = WorkersSpec(min=1, max=4, scale_up_delay=1, scale_down_delay=3)
    state = ScaleState()
    for t in range(20):
        state = decide(policy, 1.0, state, Load(float(t), 1, 0, 1)).state
    assert [t for t, _ in state.history] == [16.0, 17.0, 18.0, 19.0]


def test_holt_follows_a_linear_trend_and_forecasts_ahead() -> None:
    trend = None
    for t in range(40):
        trend = holt(trend, 2.0 * t, float(t))  # load grows by 2 per second
    assert trend is not None
    assert trend.slope == pytest.approx(2.0, rel=0.01)
    assert trend.forecast(3.0) == pytest.approx(2.0 * 39 + 6.0, rel=0.01)


def test_holt_on_a_flat_load_forecasts_the_load_and_never_below_zero() -> None:
    trend = None
    for t in range(20):
        trend = holt(trend, 5.0, t * 0.5)
    assert trend is not None
    assert trend.forecast(10.0) == pytest.approx(5.0, abs=1e-6)
    falling = None
    for t in range(5):
        falling = holt(falling, 20.0 - 4 * t, float(t))
    assert falling is not None
    assert falling.slope < 0
    assert falling.forecast(30.0) == 0.0


def test_holt_ignores_a_sample_at_the_same_instant() -> None:
    first = holt(None, 3.0, 1.0)
    assert holt(first, 100.0, 1.0) is first
    assert holt(first, 100.0, 0.5) is first


def test_forecast_grows_the_pool_ahead_of_a_rising_load() -> None:
    plain = WorkersSpec(min=1, max=16, scale_down_delay=30)
    ahead = WorkersSpec(min=1, max=16, scale_down_delay=30, forecast="holt", horizon=2)
    ramp = [(t * 0.5, t) for t in range(12)]  # +2 tasks per second
    without, with_forecast = _run(plain, ramp, target=1.0), _run(ahead, ramp, target=1.0)
    assert without[-1] == 11
    assert with_forecast[-1] > without[-1]
    assert all(a >= b for a, b in zip(with_forecast, without, strict=True))


def test_forecast_never_shrinks_faster_than_the_load() -> None:
    ahead = WorkersSpec(min=1, max=16, scale_down_delay=0, forecast="holt", horizon=5)
    fall = [(float(t), max(0, 12 - 3 * t)) for t in range(6)]
    plain = WorkersSpec(min=1, max=16, scale_down_delay=0)
    assert _run(ahead, fall, target=1.0) >= _run(plain, fall, target=1.0)


def test_decide_is_pure() -> None:
    policy = WorkersSpec(min=1, max=4, forecast="holt")
    state = ScaleState()
    load = Load(1.0, 3, 2, 1)
    first: Decision = decide(policy, 2.0, state, load)
    second: Decision = decide(policy, 2.0, state, load)
    assert first == second
    assert state == ScaleState()


# -- the spec ------------------------------------------------------------------------

_SPEC = """
apiVersion: eblocks/v1
mesh: unit
blocks:
  boss: {{}}
  w: {{handler: "tests:w"}}
patterns:
  pool:
    manager-worker: {{manager: boss, worker: w, concurrency: 3, workers: {workers}}}
"""


def _pool(workers: str) -> ManagerWorker:
    spec = parse_spec(_SPEC.format(workers=workers), "unit.yaml")
    body = spec.patterns["pool"]
    return body.manager_worker  # type: ignore[union-attr]


def test_workers_spec_defaults_and_target_from_concurrency() -> None:
    pool = _pool("{min: 1, max: 3}")
    assert pool.workers == WorkersSpec(min=1, max=3)
    assert pool.workers.scale_up_delay == 0.0
    assert pool.workers.scale_down_delay == 30.0
    assert pool.target_inflight == 3.0  # the pattern's concurrency
    assert _pool("{max: 3, target_inflight: 1.5, scale_down_delay: 500ms}").target_inflight == 1.5


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        ("{min: 4, max: 2}", "min (4) must not exceed max (2)"),
        ("{min: 0}", "greater than or equal to 1"),
        ("{max: 1000}", "less than or equal to 256"),
        ("{target_inflight: 0}", "greater than 0"),
        ("{scale_down_delay: -1s}", "expected a duration"),
        ("{forecast: arima}", "'none' or 'holt'"),
        ("{mins: 1}", "mins"),
    ],
)
def test_bad_workers_are_named_with_their_place(workers: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _pool(workers)
    text = str(caught.value)
    assert "unit.yaml:9:" in text
    assert "patterns.pool.manager-worker.workers" in text
    assert message in text
