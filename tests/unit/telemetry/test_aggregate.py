"""Merging the /v1/stats of several instances: exact sums, percentiles from summed histograms."""

from __future__ import annotations

from typing import Any

import pytest

from eblocks.dashboard import snapshot
from eblocks.telemetry import Telemetry
from eblocks.telemetry.aggregate import block_rows, edge_rows, windows_of
from eblocks.testing import FakeClock


def stats_of(block: str, instance: str, latencies: list[float], fail_every: int = 0) -> Any:
    clock = FakeClock(100.0)
    tel = Telemetry(block, instance, clock=clock)
    for i, seconds in enumerate(latencies):
        clock.advance(0.01)
        status = 500 if fail_every and i % fail_every == 0 else 200
        tel.inbound.get("cli", "ingest").add(status, seconds, 10, 10, clock.monotonic())
        tel.outbound.get("store", "direct").add(200, seconds / 2, 1, 1, clock.monotonic())
    return tel.stats((10, 60))


def test_blocks_sum_instances_and_merge_histograms() -> None:
    fast = stats_of("api", "api-0", [0.001] * 99)
    slow = stats_of("api", "api-1", [0.100] * 1, fail_every=1)
    other = stats_of("db", "db-0", [0.002] * 10)
    rows = {r.block: r for r in block_rows([fast, slow, other], "10s")}
    api = rows["api"]
    assert api.instances == 2
    assert (api.red.requests, api.red.failures) == (100, 1)
    assert api.red.success_rate == pytest.approx(0.99)
    assert api.red.p(50) == pytest.approx(1.0, rel=0.15)  # ms
    assert api.red.p(99.5) == pytest.approx(100.0, rel=0.15)  # the one slow request
    assert rows["db"].red.requests == 10


def test_edges_are_keyed_by_caller_and_callee() -> None:
    rows = edge_rows([stats_of("api", "api-0", [0.001] * 4), stats_of("api", "api-1", [0.002])])
    assert [(r.src, r.dst, r.red.requests) for r in rows] == [("api", "store", 5)]
    assert windows_of([stats_of("a", "a-0", [0.001])]) == ["10s", "60s"]


def test_dashboard_snapshot_adds_callers_from_outside_the_mesh() -> None:
    snap = snapshot("m", [stats_of("api", "api-0", [0.001] * 3)], ["db-0: TimeoutError"])
    assert snap["instances"] == 1
    assert snap["missing"] == ["db-0: TimeoutError"]
    assert snap["blocks"][0]["block"] == "api"
    assert snap["blocks"][0]["total"] == {"requests": 3, "failures": 0}
    edges = {(e["src"], e["dst"]): e for e in snap["edges"]}
    assert edges["cli", "api"]["outside"] is True
    assert edges["cli", "api"]["requests"] == 3
    assert edges["api", "store"]["requests"] == 3
