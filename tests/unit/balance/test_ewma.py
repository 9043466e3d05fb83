"""Peak EWMA: avoids slow endpoints, weighs in-flight tries, forgets with time."""

from __future__ import annotations

import random

import pytest

from eblocks._types import Endpoint
from eblocks.balance import PeakEwma
from eblocks.testing import FakeClock


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint("b", f"b-{i}", "127.0.0.1", 9000 + i) for i in range(n)]


def measure(balancer: PeakEwma, clock: FakeClock, ep: Endpoint, seconds: float) -> None:
    ticket = balancer.begin(ep, 0)
    clock.advance(seconds)
    balancer.end(ticket, ok=True)


def test_unmeasured_endpoints_cost_the_default_rtt() -> None:
    balancer = PeakEwma(random.Random(0), FakeClock(), default_rtt=0.05)
    assert balancer.latency(endpoints(1)[0]) == 0.05
    assert balancer.cost(endpoints(1)[0]) == 0.05


def test_moves_away_from_a_slow_endpoint() -> None:
    clock, (fast, slow) = FakeClock(), endpoints(2)
    balancer = PeakEwma(random.Random(1), clock)
    measure(balancer, clock, fast, 0.010)
    measure(balancer, clock, slow, 0.500)
    assert {balancer.pick([fast, slow]).instance for _ in range(50)} == {"b-0"}


def test_a_peak_is_taken_at_once_and_lower_samples_blend_in() -> None:
    clock, (ep,) = FakeClock(), endpoints(1)
    balancer = PeakEwma(random.Random(0), clock, decay=10.0)
    measure(balancer, clock, ep, 0.400)
    assert balancer.latency(ep) == pytest.approx(0.400)
    measure(balancer, clock, ep, 0.100)  # 0.1 s after the peak: weight of the sample ~1%
    assert 0.39 < balancer.latency(ep) < 0.40


def test_cost_grows_with_tries_in_flight() -> None:
    clock, (fast, slow) = FakeClock(), endpoints(2)
    balancer = PeakEwma(random.Random(2), clock)
    measure(balancer, clock, fast, 0.010)
    measure(balancer, clock, slow, 0.050)
    for _ in range(9):  # 10 ms x 10 > 50 ms x 1
        balancer.begin(fast, 0)
    assert balancer.cost(fast) > balancer.cost(slow)
    assert {balancer.pick([fast, slow]).instance for _ in range(50)} == {"b-1"}


def test_a_fast_failure_does_not_look_fast() -> None:
    clock, (good, failing) = FakeClock(), endpoints(2)
    balancer = PeakEwma(random.Random(3), clock, failure_rtt=1.0)
    measure(balancer, clock, good, 0.200)
    ticket = balancer.begin(failing, 0)
    clock.advance(0.001)
    balancer.end(ticket, ok=False)
    assert balancer.latency(failing) >= 1.0
    assert balancer.pick([good, failing]) is good


def test_a_slow_endpoint_is_tried_again_as_its_estimate_decays() -> None:
    # One try a second; the fast endpoint's estimate stays fresh at 10 ms while
    # the slow one's 500 ms decays as exp(-t / 10 s): below 10 ms after ~39 s.
    clock, (fast, slow) = FakeClock(), endpoints(2)
    balancer = PeakEwma(random.Random(4), clock, decay=10.0)
    measure(balancer, clock, fast, 0.010)
    measure(balancer, clock, slow, 0.500)
    start, retried_at = clock.monotonic(), None
    while clock.monotonic() - start < 120:
        chosen = balancer.pick([fast, slow])
        if chosen is slow:
            retried_at = clock.monotonic() - start
            break
        measure(balancer, clock, chosen, 0.010)
        clock.advance(1.0)
    assert retried_at is not None
    assert 30 < retried_at < 50


def test_reading_the_cost_does_not_change_it() -> None:
    clock, (ep,) = FakeClock(), endpoints(1)
    balancer = PeakEwma(random.Random(0), clock)
    measure(balancer, clock, ep, 0.300)
    clock.advance(5.0)
    before = balancer.latency(ep)
    for _ in range(10):
        balancer.pick([ep])
        balancer.cost(ep)
    assert balancer.latency(ep) == before
    assert before == pytest.approx(0.300 * 2.718281828 ** (-0.5))


def test_forgets_endpoints_that_left_unless_a_try_is_out() -> None:
    clock, eps = FakeClock(), endpoints(40)
    balancer = PeakEwma(random.Random(5), clock, default_rtt=0.030)
    for ep in eps:
        measure(balancer, clock, ep, 0.200)
    balancer.begin(eps[0], 0)
    balancer.pick(eps[38:])  # the view shrank to 2 endpoints
    assert balancer.latency(eps[5]) == 0.030
    assert balancer.latency(eps[0]) > 0.05  # kept: a try is still out
    assert balancer.latency(eps[39]) > 0.1


@pytest.mark.parametrize("kwargs", [{"decay": 0.0}, {"default_rtt": -1.0}, {"failure_rtt": -0.5}])
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PeakEwma(random.Random(0), FakeClock(), **kwargs)


def test_no_endpoints() -> None:
    with pytest.raises(LookupError):
        PeakEwma(random.Random(0), FakeClock()).pick([])
