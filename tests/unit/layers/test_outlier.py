"""Outlier detection: breakers per endpoint open, half-open and close; the share is bounded."""

from __future__ import annotations

import pytest

from eblocks._types import Endpoint
from eblocks.errors import CircuitOpenError
from eblocks.layers.outlier import Breaker, Detector, Detectors
from eblocks.policies import LivePolicies, PolicyState
from eblocks.spec.policies import BlockPolicy, Outlier, Policies
from eblocks.testing import FakeClock

EPS = tuple(Endpoint("b", f"b-{i}", "10.0.0.1", 9000 + i) for i in range(4))
A, B, C, D = EPS
RULE = Outlier(
    consecutive_failures=3,
    success_rate_stdev=None,
    interval=10,
    base_ejection=30,
    max_ejected_percent=50,
)


def states(detector: Detector) -> dict[str, Breaker]:
    return dict(detector.states())


def fail(detector: Detector, endpoint: Endpoint, times: int = 1) -> None:
    for _ in range(times):
        detector.outcome(endpoint, False)


def test_consecutive_failures_open_the_breaker_and_a_success_resets_the_count() -> None:
    detector = Detector(RULE, FakeClock())
    assert detector.admit(EPS) == EPS
    fail(detector, A, 2)
    detector.outcome(A, True)
    fail(detector, A, 2)
    assert detector.admit(EPS) == EPS  # never 3 in a row
    fail(detector, A)
    assert detector.admit(EPS) == [B, C, D]
    assert states(detector)["b-0"] is Breaker.OPEN
    assert detector.ejections == 1


def test_after_the_ejection_one_probe_goes_through_and_its_success_closes() -> None:
    clock = FakeClock()
    detector = Detector(RULE, clock)
    detector.admit(EPS)
    fail(detector, A, 3)
    clock.advance(29.0)
    assert A not in detector.admit(EPS)
    clock.advance(1.0)
    assert detector.admit(EPS) == (A,)  # the probe: this try goes to A alone
    assert states(detector)["b-0"] is Breaker.HALF_OPEN
    assert detector.admit(EPS) == [B, C, D]  # one probe at a time
    detector.outcome(A, True)
    assert states(detector)["b-0"] is Breaker.CLOSED
    assert detector.admit(EPS) == EPS


def test_a_failed_probe_ejects_again_for_longer() -> None:
    clock = FakeClock()
    detector = Detector(RULE, clock)
    detector.admit(EPS)
    fail(detector, A, 3)
    clock.advance(30.0)
    assert detector.admit(EPS) == (A,)
    fail(detector, A)
    assert states(detector)["b-0"] is Breaker.OPEN
    clock.advance(59.0)  # the 2nd ejection lasts 2 x 30 s
    assert A not in detector.admit(EPS)
    clock.advance(1.0)
    assert detector.admit(EPS) == (A,)
    assert detector.ejections == 2


def test_a_cancelled_probe_gives_no_verdict_and_the_next_try_probes() -> None:
    clock = FakeClock()
    detector = Detector(RULE, clock)
    detector.admit(EPS)
    fail(detector, A, 3)
    clock.advance(30.0)
    assert detector.admit(EPS) == (A,)
    detector.outcome(A, None)
    assert states(detector)["b-0"] is Breaker.OPEN
    assert detector.admit(EPS) == (A,)


def test_never_more_than_the_max_share_is_ejected() -> None:
    detector = Detector(RULE, FakeClock())  # 50 % of 4 endpoints: 2
    detector.admit(EPS)
    for endpoint in (A, B, C):
        fail(detector, endpoint, 3)
    assert detector.admit(EPS) == [C, D]
    fail(detector, C, 10)
    assert detector.admit(EPS) == [C, D]  # C keeps failing, but stays in


def test_every_endpoint_ejected_is_circuit_open() -> None:
    rule = RULE.model_copy(update={"max_ejected_percent": 100.0})
    detector = Detector(rule, FakeClock())
    detector.admit(EPS[:2])
    fail(detector, A, 3)
    fail(detector, B, 3)
    with pytest.raises(CircuitOpenError) as caught:
        detector.admit(EPS[:2])
    assert caught.value.reason == "circuit_open"
    assert caught.value.detail == {"target": "b", "ejected": 2}


SR = Outlier(
    consecutive_failures=None,
    success_rate_stdev=1.0,
    success_rate_min_hosts=3,
    success_rate_min_requests=10,
    interval=10,
    base_ejection=30,
    max_ejected_percent=50,
)


def serve(detector: Detector, endpoint: Endpoint, ok: int, failed: int) -> None:
    for _ in range(ok):
        detector.outcome(endpoint, True)
    fail(detector, endpoint, failed)


def test_a_success_rate_far_below_the_others_is_ejected_at_the_interval() -> None:
    clock = FakeClock()
    detector = Detector(SR, clock)
    detector.admit(EPS)
    for endpoint in (A, B, C):
        serve(detector, endpoint, 20, 0)
    serve(detector, D, 10, 10)  # 50 %: mean 0.875, stdev ~0.217 -> threshold ~0.66
    assert detector.admit(EPS) == EPS  # judged only once the interval is over
    clock.advance(10.0)
    assert detector.admit(EPS) == [A, B, C]
    assert states(detector)["b-3"] is Breaker.OPEN


@pytest.mark.parametrize(
    ("hosts", "requests"),
    [(2, 20), (4, 9)],  # fewer than min_hosts judged / too few requests each
)
def test_success_rate_needs_enough_hosts_with_enough_requests(hosts: int, requests: int) -> None:
    clock = FakeClock()
    detector = Detector(SR, clock)
    detector.admit(EPS)
    for endpoint in EPS[: hosts - 1]:
        serve(detector, endpoint, requests, 0)
    serve(detector, EPS[hosts - 1], 0, requests)
    clock.advance(10.0)
    assert detector.admit(EPS) == EPS


def test_the_default_rule_ejects_a_failing_endpoint_in_the_smallest_pool_it_judges() -> None:
    # n endpoints put the worst at most sqrt(n - 1) stdevs below the mean: with 3 (the
    # old default of min_hosts) 1.41, short of the default 1.9, so nothing ever fired
    rule = Outlier(consecutive_failures=None, success_rate_min_requests=10)
    pool = tuple(Endpoint("b", f"b-{i}", "10.0.0.1", 9000 + i) for i in range(5))
    assert len(pool) == rule.success_rate_min_hosts
    clock = FakeClock()
    detector = Detector(rule, clock)
    detector.admit(pool)
    for endpoint in pool[:-1]:
        serve(detector, endpoint, 20, 0)
    serve(detector, pool[-1], 0, 20)
    clock.advance(rule.interval)
    assert detector.admit(pool) == list(pool[:-1])
    assert states(detector)["b-4"] is Breaker.OPEN


def test_counts_restart_each_interval() -> None:
    clock = FakeClock()
    detector = Detector(SR, clock)
    detector.admit(EPS)
    for endpoint in (A, B, C):
        serve(detector, endpoint, 20, 0)
    clock.advance(10.0)
    detector.admit(EPS)  # judged (nothing to eject); counts start again
    serve(detector, D, 0, 20)  # D alone has requests in this interval
    clock.advance(10.0)
    assert detector.admit(EPS) == EPS


def state_with(outlier: Outlier | None, version: int) -> PolicyState:
    blocks = {"b": BlockPolicy(outlier=outlier)} if outlier is not None else {}
    return PolicyState.of(Policies(blocks=blocks), version)


def test_detectors_keep_breakers_while_the_rule_is_unchanged() -> None:
    holder = LivePolicies(state_with(RULE, 0))
    detectors = Detectors(holder, "b", FakeClock())
    first = detectors.current()
    assert first is not None
    assert first.admit(EPS) == EPS
    fail(first, A, 3)
    holder.swap(state_with(RULE.model_copy(), 1))
    assert detectors.current() is first  # an equal rule of a newer version
    assert first.admit(EPS) == [B, C, D]
    holder.swap(state_with(RULE.model_copy(update={"base_ejection": 5.0}), 2))
    changed = detectors.current()
    assert changed is not None
    assert changed is not first
    assert changed.admit(EPS) == EPS  # a changed rule starts with closed breakers
    assert detectors.ejections == 1  # the count survives the change
    holder.swap(state_with(None, 3))
    assert detectors.current() is None
    assert list(detectors.states()) == []
    assert detectors.ejections == 1
