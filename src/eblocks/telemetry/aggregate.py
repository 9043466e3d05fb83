"""Merge the ``/v1/stats`` of many instances into per-block and per-edge figures.

Each instance reports windows with a sparse latency histogram (fine-bucket
index, count); summing those histograms gives exact mesh-wide percentiles
(up to the bucket width), which averaging the instances' p99s would not.
Used by ``eblocks stat``/``top`` and the dashboard; pure functions over JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eblocks.telemetry.series import FINE_BOUNDS, percentile

__all__ = ["BlockRow", "EdgeRow", "Red", "block_rows", "edge_rows"]

_NBUCKETS = len(FINE_BOUNDS) + 1


@dataclass(slots=True)
class Red:
    """Rate, errors, duration over one window, summed over instances."""

    requests: int = 0
    failures: int = 0
    rps: float = 0.0
    hist: list[int] = field(default_factory=lambda: [0] * _NBUCKETS)

    def add(self, window: Mapping[str, Any] | None) -> None:
        if not window:
            return
        self.requests += int(window.get("requests", 0))
        self.failures += int(window.get("failures", 0))
        self.rps += float(window.get("rps", 0.0))
        for index, count in window.get("hist", ()):
            if 0 <= int(index) < _NBUCKETS:
                self.hist[int(index)] += int(count)

    @property
    def success_rate(self) -> float | None:
        return (self.requests - self.failures) / self.requests if self.requests else None

    def p(self, q: float) -> float | None:
        """The ``q``-th percentile in milliseconds."""
        value = percentile(self.hist, q)
        return None if value is None else value * 1000

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "rps": round(self.rps, 3),
            "success_rate": self.success_rate,
            "p50_ms": self.p(50),
            "p95_ms": self.p(95),
            "p99_ms": self.p(99),
        }


@dataclass(slots=True)
class BlockRow:
    """One block: how many instances answered and its inbound RED."""

    block: str
    instances: int = 0
    inflight: int = 0
    red: Red = field(default_factory=Red)


@dataclass(slots=True)
class EdgeRow:
    """Calls from one block to another (the caller's outbound view)."""

    src: str
    dst: str
    red: Red = field(default_factory=Red)
    retries: int = 0


def block_rows(stats: Iterable[Mapping[str, Any]], window: str = "10s") -> list[BlockRow]:
    """Per block, the inbound RED of all its instances over ``window``."""
    rows: dict[str, BlockRow] = {}
    for one in stats:
        row = rows.setdefault(one["block"], BlockRow(one["block"]))
        row.instances += 1
        for edge in one.get("inbound", {}).get("edges", ()):
            row.red.add(edge.get(window))
            row.inflight += int(edge.get("inflight", 0))
    return [rows[name] for name in sorted(rows)]


def edge_rows(stats: Iterable[Mapping[str, Any]], window: str = "10s") -> list[EdgeRow]:
    """Per (caller, callee) pair, the callers' outbound RED over ``window``."""
    rows: dict[tuple[str, str], EdgeRow] = {}
    for one in stats:
        for edge in one.get("outbound", {}).get("edges", ()):
            key = (one["block"], edge["peer"])
            row = rows.setdefault(key, EdgeRow(*key))
            row.red.add(edge.get(window))
            row.retries += int(edge.get("total", {}).get("retries", 0))
    return [rows[key] for key in sorted(rows)]


def windows_of(stats: Sequence[Mapping[str, Any]]) -> list[str]:
    """The windows every instance reported (``10s``, ``60s``)."""
    found = [set(one.get("windows", ())) for one in stats]
    common = set.intersection(*found) if found else set()
    return sorted(common, key=lambda w: int(w.removesuffix("s")))
