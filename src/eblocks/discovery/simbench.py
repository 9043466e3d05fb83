"""The simulated half of ``eblocks bench discovery``: :func:`~.sim.simulate` at several sizes.

Every node of the simulator holds a full view, so memory grows with N². The
views are arrays by interned member id (:mod:`.viewstore`), about 60 bytes per
entry measured: 1.5 GB at 5,000 members, 6 GB at 10,000 (it was 170 bytes, and
17 GB at 10,000, with one object per entry). A size whose estimate does not fit
in half the memory available now is *refused* with the reason in the report,
rather than started and killed by the OOM killer.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil

from eblocks.discovery.sim import simulate

__all__ = [
    "BYTES_PER_VIEW_ENTRY",
    "cells",
    "estimate_bytes",
    "headers",
    "run_simulations",
    "to_markdown",
    "write",
]

BYTES_PER_VIEW_ENTRY = 60
"""Measured: peak RSS ≈ 60 MB + 60 B * N² (2,000 → 0.33 GB, 5,000 → 1.5 GB)."""
BASE_BYTES = 60_000_000


def estimate_bytes(n: int) -> int:
    """The simulator's expected peak memory for ``n`` members."""
    return BASE_BYTES + BYTES_PER_VIEW_ENTRY * n * n


def run_simulations(
    sizes: Sequence[int],
    *,
    seed: int = 1,
    memory_fraction: float = 0.5,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Simulate each size in turn; sizes that cannot fit in memory are refused, not run."""
    results: list[dict[str, Any]] = []
    for n in sizes:
        need = estimate_bytes(n)
        available = psutil.virtual_memory().available
        if need > memory_fraction * available:
            results.append(
                {
                    "members": n,
                    "refused": (
                        f"needs about {need / 1e9:.1f} GB (every node holds a full view: "
                        f"N² entries); {available / 1e9:.1f} GB available, limit "
                        f"{memory_fraction:.0%} of that"
                    ),
                }
            )
            progress(f"{n} members: refused (needs ~{need / 1e9:.1f} GB)")
            continue
        progress(f"simulating {n} members")
        began = time.perf_counter()
        report = simulate(n, seed=seed, steady_window=10.0 if n <= 200 else 5.0)
        row: dict[str, Any] = dict(report.as_dict())
        row["peak_rss_mb"] = _peak_rss_mb()
        row["wall_seconds"] = round(time.perf_counter() - began, 2)
        results.append(row)
    return {
        "benchmark": "discovery-simulation",
        "command": "eblocks bench discovery --simulate " + ",".join(map(str, sizes)),
        "seed": seed,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {psutil.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 1e9:.0f} GB",
        "network": "simulated: 1-5 ms one-way delay, no loss; times are simulated seconds",
        "results": results,
    }


def _peak_rss_mb() -> int:
    """This process's peak RSS so far (a run's own peak when sizes grow)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


_COLUMNS = (
    ("members", "members"),
    ("start", "start"),
    ("converge_seconds", "converge s"),
    ("converge_rounds", "rounds"),
    ("detect_seconds", "detect s"),
    ("packets_per_member_s", "packets/member/s"),
    ("bytes_per_member_s", "B/member/s"),
    ("sync_bytes_per_member_s", "+ push-pull B/s"),
    ("wall_seconds", "wall s"),
    ("peak_rss_mb", "peak RSS MB"),
)


def cells(row: dict[str, Any]) -> list[str]:
    """One result as table cells (a refused size says why)."""
    if "refused" in row:
        return [str(row["members"]), "refused (memory)", *["-"] * (len(_COLUMNS) - 2)]
    out = []
    for key, _ in _COLUMNS:
        if key == "start":
            out.append("cold" if row["cold_start"] else "seeded, 1 join")
        else:
            out.append(f"{row[key]:g}" if isinstance(row[key], float) else str(row[key]))
    return out


def headers() -> list[str]:
    return [title for _, title in _COLUMNS]


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Discovery: simulated gossip membership",
        "",
        f"`{report['command']}` — {report['network']}; seed {report['seed']}, "
        f"Python {report['python']}, {report['machine']}.",
        "",
        "| " + " | ".join(headers()) + " |",
        "|" + "---:|" * len(_COLUMNS),
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in report["results"]]
    refused = [row for row in report["results"] if "refused" in row]
    if refused:
        lines += ["", "Refused:", ""]
        lines += [f"- {row['members']} members: {row['refused']}" for row in refused]
    lines += [
        "",
        "*converge*: cold start (up to 100 members) until every view lists everyone, or, "
        "seeded, until one joiner is known to all; *detect*: from killing one member "
        "(no goodbye) to its removal from every view; traffic is what each member sends "
        "in steady state. A refused size would not fit in memory: the simulator keeps "
        "N² view entries.",
        "",
    ]
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "discovery.json", out / "discovery.md"
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(to_markdown(report), encoding="utf-8")
    return [json_path, md_path]
