"""`eblocks bench telemetry` as a smoke run: every variant of both sides is measured."""

from __future__ import annotations

import pytest

from eblocks.bench.telemetry import VARIANTS, run_telemetry_bench


def test_a_short_run_measures_every_variant() -> None:
    result = run_telemetry_bench(calls=100, rounds=1)
    rows = {(r["side"], r["variant"]): r for r in result["rows"]}
    assert set(rows) == {(side, v) for side in ("outbound", "inbound") for v in VARIANTS}
    assert all(r["us_per_call"] > 0 for r in rows.values())
    assert rows["inbound", "off"]["added_us"] == 0


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="calls"):
        run_telemetry_bench(calls=10)
