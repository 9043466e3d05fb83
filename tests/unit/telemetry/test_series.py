"""Series and sliding windows on an injected clock: counts, percentiles, Prometheus buckets."""

from __future__ import annotations

import itertools

import pytest

from eblocks.telemetry import Telemetry
from eblocks.telemetry.series import (
    FINE_BOUNDS,
    PROM_BOUNDS,
    Series,
    SeriesTable,
    merged,
    percentile,
)
from eblocks.testing import FakeClock


def test_fine_bounds_are_increasing_and_hold_every_prometheus_bound() -> None:
    assert list(FINE_BOUNDS) == sorted(set(FINE_BOUNDS))
    assert set(PROM_BOUNDS) <= set(FINE_BOUNDS)
    ratios = [b / a for a, b in itertools.pairwise(FINE_BOUNDS)]
    assert max(ratios) <= 1.15  # a bucket is at most 15 % wide: percentiles stay close


def test_totals_statuses_bytes_and_prometheus_buckets() -> None:
    s = Series("a", "r")
    for _ in range(3):
        s.add(200, 0.0004, 10, 20, now=1.0)  # <= 0.0005
    s.add(200, 0.0005, 1, 2, now=1.0)  # exactly on a bound: counted in it (le)
    s.add(503, 0.2, 0, 0, now=1.0)  # <= 0.25
    s.add(200, 100.0, 0, 0, now=1.0)  # past every bound: +Inf only
    assert s.statuses == {200: 5, 503: 1}
    assert s.requests == 6
    assert (s.bytes_in, s.bytes_out) == (31, 62)
    buckets = dict(zip((*PROM_BOUNDS, float("inf")), s.prom_buckets(), strict=True))
    assert buckets[0.0005] == 4
    assert buckets[0.1] == 4
    assert buckets[0.25] == 5
    assert buckets[30.0] == 5
    assert buckets[float("inf")] == 6
    assert s.sum == pytest.approx(3 * 0.0004 + 0.0005 + 0.2 + 100.0)


def test_windows_slide_second_by_second() -> None:
    s = Series("a", "r")
    for second in range(100, 160):  # one request a second for a minute, every 10th fails
        s.add(500 if second % 10 == 0 else 200, 0.010, 0, 0, now=second + 0.5)
    last10 = s.window(10, now=159.5)
    assert (last10.requests, last10.failures) == (10, 1)  # seconds 150..159
    assert last10.span == pytest.approx(9.5)
    last60 = s.window(60, now=159.5)
    assert (last60.requests, last60.failures) == (60, 6)
    later = s.window(10, now=165.0)  # seconds 156..165: 156..159 had requests
    assert later.requests == 4
    assert s.window(60, now=300.0).requests == 0  # all slots are older than the window


def test_slots_are_reused_after_a_minute() -> None:
    s = Series("a", "r")
    s.add(200, 0.01, 0, 0, now=10.2)
    s.add(200, 0.01, 0, 0, now=70.2)  # the same slot, one minute later: reset first
    assert s.window(60, now=70.5).requests == 1
    assert s.requests == 2  # the totals keep everything


def test_percentiles_of_a_known_distribution() -> None:
    s = Series("a", "r")
    for ms in range(1, 101):  # 1 ms .. 100 ms, once each
        s.add(200, ms / 1000, 0, 0, now=5.0)
    window = s.window(10, now=5.0)
    p50, p99 = percentile(window.hist, 50), percentile(window.hist, 99)
    assert p50 is not None
    assert p99 is not None
    assert p50 == pytest.approx(0.050, rel=0.12)
    assert p99 == pytest.approx(0.099, rel=0.12)
    assert percentile([0] * 10, 50) is None


def test_table_folds_series_past_its_limit() -> None:
    table = SeriesTable("inbound", limit=2)
    a, b = table.get("a", "r"), table.get("b", "r")
    assert table.get("a", "r") is a
    other = table.get("c", "r")
    assert (other.peer, other.route) == ("other", "other")
    assert table.get("d", "x") is other
    assert len(table) == 3
    assert b in list(table)


def test_stats_red_per_route_and_per_peer() -> None:
    clock = FakeClock(999.75)
    tel = Telemetry("count", "count-0", clock=clock)
    for i in range(40):
        clock.advance(0.25)  # 4 requests a second for 10 s
        peer = "tokenize" if i % 2 else "external"
        status = 500 if i % 8 == 0 else 200
        tel.inbound.get(peer, "ingest").add(status, 0.002, 100, 10, clock.monotonic())
    tel.outbound.get("store", "direct").add(200, 0.004, 10, 1, clock.monotonic())
    stats = tel.stats((10, 60))
    assert stats["windows"] == ["10s", "60s"]
    by_route = {r["route"]: r for r in stats["inbound"]["by_route"]}
    ten = by_route["ingest"]["10s"]
    assert ten["requests"] == 40
    assert ten["failures"] == 5
    assert ten["success_rate"] == pytest.approx(35 / 40)
    assert ten["rps"] == pytest.approx(4.0, rel=0.03)
    assert ten["p50_ms"] == pytest.approx(2.0, rel=0.12)
    by_peer = {r["peer"]: r["10s"]["requests"] for r in stats["inbound"]["by_peer"]}
    assert by_peer == {"external": 20, "tokenize": 20}
    edge = stats["outbound"]["edges"][0]
    assert (edge["peer"], edge["route"], edge["total"]["requests"]) == ("store", "direct", 1)
    clock.advance(30)
    assert tel.stats((10,))["inbound"]["by_route"][0]["10s"]["requests"] == 0


def test_peer_labels_are_sanitised() -> None:
    tel = Telemetry("b", "b-0")
    assert tel.peer("tokenize") == "tokenize"
    assert tel.peer(None) == "external"
    assert tel.peer('evil"} 1\n') == "external"
    assert tel.peer("UPPER") == "external"


def test_a_requests_inbound_series_is_its_sanitised_peers() -> None:
    tel = Telemetry("b", "b-0")
    for raw in ("tokenize", None, "", 'evil"} 1\n', "UPPER", "tokenize"):
        found = tel.inbound_series(raw, "ingest")
        assert found is tel.inbound.get(tel.peer(raw), "ingest")
        assert found is tel.inbound_series(raw, "ingest")  # the same series, looked up again
    assert {(s.peer, s.route) for s in tel.inbound} == {
        ("tokenize", "ingest"),
        ("external", "ingest"),
    }


def test_a_window_starts_at_its_first_second_with_requests_whatever_the_gaps() -> None:
    s = Series("a", "r")
    s.add(200, 0.001, 0, 0, now=10.1)
    s.add(503, 0.100, 0, 0, now=30.1)
    s.add(200, 0.001, 0, 0, now=50.1)
    s.add(200, 0.001, 0, 0, now=50.9)
    window = s.window(25, now=50.95)  # seconds 26..50: the requests of 30 and 50
    assert (window.requests, window.failures) == (3, 1)
    assert sum(window.hist) == 3
    assert percentile(window.hist, 99) == pytest.approx(0.1, rel=0.12)
    assert s.window(1, now=50.95).requests == 2  # second 50 only
    assert s.window(60, now=50.95).requests == 4
    assert s.window(10, now=80.0).requests == 0  # nothing since second 71
    assert s.window(60, now=109.0).requests == 2  # seconds 50..109: second 50's two


def test_a_young_instances_windows_span_only_the_time_it_has_counted() -> None:
    clock = FakeClock(1000.0)
    tel = Telemetry("clean", "clean-0", clock=clock)
    for _ in range(21):  # 21 requests over the instance's first 25.9 s
        clock.advance(25.9 / 21)
        tel.inbound.get("cli", "ingest").add(200, 0.002, 0, 0, clock.monotonic())
    stats = tel.stats((10, 60))
    assert stats["uptime_s"] == pytest.approx(25.9)
    edge = stats["inbound"]["edges"][0]
    assert edge["60s"]["requests"] == 21
    assert edge["60s"]["rps"] == pytest.approx(21 / 25.9, abs=0.001)  # not 21 / 60
    by_route = stats["inbound"]["by_route"][0]["60s"]
    assert by_route["rps"] == pytest.approx(21 / 25.9, abs=0.001)
    assert stats["inbound"]["by_peer"][0]["60s"]["rps"] == pytest.approx(21 / 25.9, abs=0.001)
    ten = edge["10s"]  # a window the instance has lived through whole: as before
    assert ten["rps"] == pytest.approx(ten["requests"] / (9 + 0.9), abs=0.001)


def test_a_window_span_is_floored_at_a_second_and_unchanged_for_a_full_window() -> None:
    s = Series("a", "r")
    s.add(200, 0.001, 0, 0, now=100.2)
    s.add(200, 0.001, 0, 0, now=100.3)
    assert s.window(60, now=100.4, since=100.1).span == pytest.approx(1.0)  # not 0.3 s
    assert s.window(60, now=130.5, since=100.0).span == pytest.approx(30.5)
    assert s.window(10, now=130.5, since=100.0).span == pytest.approx(9.5)
    full = s.window(60, now=159.5, since=0.0)
    assert full.span == pytest.approx(59.5)
    assert full.span == s.window(60, now=159.5).span  # no start known: the window's own
    assert merged([s], 60, now=130.5, since=100.0).span == pytest.approx(30.5)
    assert merged([s], 60, now=159.5).span == pytest.approx(59.5)
