"""Write a patterns run as JSON (everything), Markdown (the table) and a PNG chart."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
from rich.table import Table

from eblocks.bench.patterns import ConfigResult, PatternsReport

__all__ = ["console_table", "to_json", "to_markdown", "write_chart", "write_results"]

_COLUMNS = (
    "configuration",
    "workers",
    "tasks/s",
    "x pipeline",
    "ideal tasks/s",
    "efficiency",
    "p50 ms",
    "p99 ms",
    "errors",
)


def write_results(report: PatternsReport, out: Path, name: str = "patterns") -> list[Path]:
    """``<out>/<name>.json``, ``.md`` and (with matplotlib installed) ``.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.json", out / f"{name}.md"]
    written[0].write_bytes(orjson.dumps(to_json(report), option=orjson.OPT_INDENT_2) + b"\n")
    written[1].write_text(to_markdown(report, chart=f"{name}.png"), encoding="utf-8")
    chart = out / f"{name}.png"
    if write_chart(report, chart):
        written.append(chart)
    return written


def to_json(report: PatternsReport) -> dict[str, Any]:
    return {
        "benchmark": "patterns",
        "created": report.created,
        "machine": report.machine,
        "settings": report.settings,
        "calibration": report.calibration,
        "errors": report.errors,
        "configs": [dataclasses.asdict(c) for c in report.configs],
        "reaction_s": report.reaction_s,
        "reactions": [dataclasses.asdict(r) for r in report.reactions],
        "rounds": [dataclasses.asdict(s) for s in report.samples],
    }


def _row(c: ConfigResult) -> list[str]:
    return [
        c.name,
        str(c.workers),
        f"{c.throughput:,.1f}",
        f"{c.ratio:.2f}",
        f"{c.ideal:,.1f}",
        f"{c.efficiency:.2f}",
        f"{c.p50_ms:.1f}",
        f"{c.p99_ms:.1f}",
        str(c.errors),
    ]


def to_markdown(report: PatternsReport, chart: str | None = None) -> str:
    s, m, cal = report.settings, report.machine, report.calibration
    lines = [
        "# Patterns: the same CPU-bound work through each pattern",
        "",
        f"Run {report.created} on {m['cpus']} x {m['cpu']} ({m['platform']}, "
        f"Python {m['python']}); load average {m.get('loadavg_start')} at the start.",
        f"Task: {cal['iters']:.0f} chained SHA-256 hashes, {cal['cpu_per_task_s'] * 1000:.1f} ms "
        f"of CPU measured in one process (asked: {s['work_ms']} ms). {s['concurrency']} tasks "
        f"in flight; {s['rounds']} rounds x {s['duration_s']} s per configuration "
        f"(+{s['warmup_s']} s warm-up), order rotating; medians over rounds.",
        "`x pipeline` is the median of the per-round ratios to the one-instance pipeline; "
        "`ideal` is min(workers, cores) / CPU per task; `efficiency` = tasks/s / ideal.",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|---|" + "|".join("---:" for _ in _COLUMNS[1:]) + "|",
    ]
    lines += ["| " + " | ".join(_row(c)) + " |" for c in report.configs]
    lines += ["", "Scale-up reaction (autoscaled pool 1 -> 2 workers, load step to serving):", ""]
    if report.reactions:
        for r in report.reactions:
            told = f"{r.reported_s:.2f} s" if r.reported_s is not None else "n/a"
            lines.append(
                f"- round {r.round + 1}: {r.observed_s:.2f} s observed, manager reported {told}"
            )
        lines.append(f"- median: {report.reaction_s:.2f} s (target: <= 3 s)")
    else:
        lines.append("- not measured in this run")
    where = " — see `rounds[].error_kinds` in the JSON" if report.errors else ""
    lines += ["", f"Errors: {report.errors}{where}"]
    if chart:
        lines += ["", f"![patterns]({chart})"]
    return "\n".join(lines) + "\n"


def console_table(report: PatternsReport) -> Table:
    table = Table(title="eblocks bench patterns (medians over rounds)")
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for c in report.configs:
        row = _row(c)
        if c.errors:
            row[-1] = f"[bold red]{row[-1]}[/]"
        table.add_row(*row)
    return table


def write_chart(report: PatternsReport, path: Path) -> bool:
    """Throughput against the ideal per configuration; False without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    labels = [c.name.replace(" (", "\n(") for c in report.configs]
    xs = list(range(len(labels)))
    width = 0.38
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(
        [x - width / 2 for x in xs],
        [c.ideal for c in report.configs],
        width,
        label="ideal (cores / CPU per task)",
        color="#c8c8c8",
    )
    ax.bar(
        [x + width / 2 for x in xs],
        [c.throughput for c in report.configs],
        width,
        label="measured",
        color="#2a6fdb",
    )
    for x, c in zip(xs, report.configs, strict=True):
        ax.annotate(
            f"{c.efficiency:.2f}",
            (x + width / 2, c.throughput),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(xs, labels)
    ax.set_ylabel("tasks/s")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    reaction = f"; scale-up reaction {report.reaction_s:.2f} s" if report.reaction_s else ""
    fig.suptitle(f"Same CPU-bound task per pattern (above the bars: efficiency){reaction}")
    fig.savefig(path, dpi=110)
    return True
