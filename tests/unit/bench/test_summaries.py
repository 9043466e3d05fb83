"""`bench overhead`'s summaries: every side is paired with its baseline round by round."""

from __future__ import annotations

import pytest

from eblocks.bench.overhead import (
    Sample,
    check_policy_targets,
    check_security_targets,
    check_targets,
    check_telemetry_targets,
    summarize,
    summarize_policies,
    summarize_security,
    summarize_telemetry,
)


def _sample(kind: str, rnd: int, rps: float, p50: float, conc: int = 1) -> Sample:
    return Sample(
        kind=kind, size=4096, concurrency=conc, round=rnd, position=0, requests=int(rps),
        errors=0, error_kinds={}, elapsed_s=1.0, rps=rps, p50_ms=p50, p90_ms=p50, p99_ms=2 * p50,
        mean_ms=p50, warmup_requests=1, warmup_errors=0, client_cpu_us=10.0, server_cpu_us=20.0,
    )  # fmt: skip


ROUNDS = [  # (bare, eblock, policies, secure) req/s and p50 per round; round 1 is slow
    ((1000, 1.0), (800, 1.2), (720, 1.3), (400, 2.0)),
    ((500, 2.0), (400, 2.4), (380, 2.5), (200, 4.0)),
    ((1000, 1.0), (900, 1.1), (810, 1.2), (450, 1.8)),
]


def _samples(conc: int = 1) -> list[Sample]:
    kinds = ("bare", "eblock", "policies", "secure")
    return [
        _sample(kind, rnd, rps, p50, conc)
        for rnd, sides in enumerate(ROUNDS)
        for kind, (rps, p50) in zip(kinds, sides, strict=True)
    ]


def test_eblock_against_bare() -> None:
    (cell,) = summarize(_samples())
    assert cell.rps_ratio == pytest.approx(0.8)  # median of 0.8, 0.8, 0.9
    assert cell.p50_added_ms == pytest.approx(0.2)  # median of 0.2, 0.4, 0.1
    assert cell.bare.rps == 1000
    assert [t.name for t in check_targets([cell])] == ["added p50 ms"]
    assert not check_targets([cell])[0].ok  # 0.2 > 0.15


def test_policies_and_security_against_eblock() -> None:
    (policies,) = summarize_policies(_samples())
    assert policies.rps_ratio == pytest.approx(0.9)  # 0.9, 0.95, 0.9
    assert policies.p50_added_ms == pytest.approx(0.1)
    (secure,) = summarize_security(_samples())
    assert secure.side == "secure"
    assert secure.rps_ratio == pytest.approx(0.5)
    assert [t.name for t in check_security_targets([secure])] == ["secure added p50 ms"]
    (at32,) = summarize_policies(_samples(conc=32))
    (target,) = check_policy_targets([at32])
    assert (target.name, target.ok) == ("policies req/s ratio", True)  # 0.9 >= 0.9


TELEMETRY_ROUNDS = [  # (telemetry-off, eblock = metrics, telemetry = + tracing) per round
    ((1000, 1.00), (960, 1.02), (900, 1.06)),
    ((400, 2.50), (390, 2.52), (380, 2.60)),  # a slow round moves all three together
    ((1000, 1.00), (980, 1.01), (920, 1.04)),
]


def _telemetry_samples(conc: int) -> list[Sample]:
    kinds = ("telemetry-off", "eblock", "telemetry")
    return [
        _sample(kind, rnd, rps, p50, conc)
        for rnd, sides in enumerate(TELEMETRY_ROUNDS)
        for kind, (rps, p50) in zip(kinds, sides, strict=True)
    ]


def test_metrics_and_tracing_against_telemetry_off() -> None:
    metrics, traced = summarize_telemetry(_telemetry_samples(1))
    assert (metrics.side, traced.side) == ("eblock", "telemetry")
    assert metrics.plain.rps == traced.plain.rps == 1000  # both against telemetry-off
    assert metrics.rps_ratio == pytest.approx(0.975)  # median of 0.96, 0.975, 0.98
    assert traced.rps_ratio == pytest.approx(0.92)  # 0.9, 0.95, 0.92
    assert traced.p50_added_ms == pytest.approx(0.06)  # 0.06, 0.10, 0.04
    (target,) = check_telemetry_targets([metrics, traced])  # only the traced side is judged
    assert (target.name, target.value, target.ok) == (
        "telemetry added p50 ms",
        traced.p50_added_ms,
        False,
    )
    (at32,) = check_telemetry_targets(summarize_telemetry(_telemetry_samples(32)))
    assert (at32.name, at32.concurrency, at32.ok) == ("telemetry req/s ratio", 32, True)  # 0.92
