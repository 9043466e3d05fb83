"""Write an overhead run as JSON (everything), Markdown (the table) and a PNG chart."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
from rich.table import Table

from eblocks.bench.overhead import CellResult, OverheadReport, PolicyCell, SecurityCell

__all__ = [
    "console_table",
    "policies_table",
    "security_table",
    "sidecar_table",
    "to_json",
    "to_markdown",
    "write_chart",
    "write_results",
]

_COLUMNS = (
    "size",
    "concurrency",
    "bare req/s",
    "eblock req/s",
    "ratio",
    "bare p50/p99 ms",
    "eblock p50/p99 ms",
    "added p50 ms",
    "errors",
)


def write_results(report: OverheadReport, out: Path, name: str = "overhead") -> list[Path]:
    """``<out>/<name>.json``, ``.md`` and (with matplotlib installed) ``.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{name}.json", out / f"{name}.md"]
    written[0].write_bytes(orjson.dumps(to_json(report), option=orjson.OPT_INDENT_2) + b"\n")
    written[1].write_text(to_markdown(report, chart=f"{name}.png"), encoding="utf-8")
    chart = out / f"{name}.png"
    if write_chart(report, chart):
        written.append(chart)
    return written


def to_json(report: OverheadReport) -> dict[str, Any]:
    return {
        "benchmark": "overhead",
        "created": report.created,
        "machine": report.machine,
        "settings": report.settings,
        "errors": report.errors,
        "cells": [dataclasses.asdict(c) for c in report.cells],
        "targets": [dataclasses.asdict(t) for t in report.targets],
        "security_cells": [dataclasses.asdict(c) for c in report.security_cells],
        "policy_cells": [dataclasses.asdict(c) for c in report.policy_cells],
        "policy_layers": report.policy_layers,
        "sidecar_cells": [dataclasses.asdict(c) for c in report.sidecar_cells],
        "rounds": [dataclasses.asdict(s) for s in report.samples],
    }


def _size(n: int) -> str:
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def _row(c: CellResult) -> list[str]:
    return [
        _size(c.size),
        str(c.concurrency),
        f"{c.bare.rps:,.0f}",
        f"{c.eblock.rps:,.0f}",
        f"{c.rps_ratio:.2f}",
        f"{c.bare.p50_ms:.3f} / {c.bare.p99_ms:.3f}",
        f"{c.eblock.p50_ms:.3f} / {c.eblock.p99_ms:.3f}",
        f"{c.p50_added_ms:+.3f}",
        str(c.bare.errors + c.eblock.errors),
    ]


def to_markdown(report: OverheadReport, chart: str | None = None) -> str:
    s, m = report.settings, report.machine
    lines = [
        "# Eblock overhead vs bare aiohttp",
        "",
        f"Run {report.created} on {m['cpus']} x {m['cpu']} ({m['platform']}, "
        f"Python {m['python']}, aiohttp {m['aiohttp']}, client loop {m['client_loop']}).",
        f"{s['rounds']} rounds x {s['duration_s']} s per side and cell "
        f"(+{s['warmup_s']} s warm-up); medians over rounds. `ratio` is the median of the "
        "per-round eblock/bare req/s; `added p50` the median of the per-round differences.",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join("---:" for _ in _COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_row(c)) + " |" for c in report.cells]
    lines += [
        "",
        "CPU time per request (µs, medians over rounds) — less moved by a busy machine than req/s:",
        "",
        "| size | concurrency | client bare | client eblock | server bare | server eblock |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {_size(c.size)} | {c.concurrency} | {c.bare.client_cpu_us:.0f} "
        f"| {c.eblock.client_cpu_us:.0f} | {c.bare.server_cpu_us:.0f} "
        f"| {c.eblock.server_cpu_us:.0f} |"
        for c in report.cells
    ]
    if report.security_cells:
        lines += ["", *_security_markdown(report.security_cells)]
    if report.policy_cells:
        lines += ["", *_policies_markdown(report.policy_cells)]
    if report.policy_layers:
        lines += ["", *policy_layers_lines(report.policy_layers)]
    if report.sidecar_cells:
        lines += ["", *_sidecar_markdown(report.sidecar_cells)]
    lines += ["", "Targets:", ""]
    for t in report.targets:
        verdict = "met" if t.ok else "**missed**"
        lines.append(
            f"- {t.name} at {_size(t.size)}, concurrency {t.concurrency}: "
            f"{t.value:.3f} (limit {t.limit}) — {verdict}"
        )
    if not report.targets:
        lines.append("- none measured in this run (needs 4 KB bodies, concurrency 1 and 32)")
    where = " — see `rounds[].error_kinds` in the JSON" if report.errors else ""
    lines += ["", f"Errors: {report.errors}{where}"]
    if chart:
        lines += ["", f"![overhead]({chart})"]
    return "\n".join(lines) + "\n"


_SECURITY_COLUMNS = (
    "side",
    "size",
    "concurrency",
    "plain req/s",
    "secured req/s",
    "ratio",
    "plain p50/p99 ms",
    "secured p50/p99 ms",
    "added p50 ms",
    "server µs/req plain/secured",
    "errors",
)


def _security_row(c: SecurityCell) -> list[str]:
    return [
        c.side,
        _size(c.size),
        str(c.concurrency),
        f"{c.plain.rps:,.0f}",
        f"{c.secure.rps:,.0f}",
        f"{c.rps_ratio:.2f}",
        f"{c.plain.p50_ms:.3f} / {c.plain.p99_ms:.3f}",
        f"{c.secure.p50_ms:.3f} / {c.secure.p99_ms:.3f}",
        f"{c.p50_added_ms:+.3f}",
        f"{c.plain.server_cpu_us:.0f} / {c.secure.server_cpu_us:.0f}",
        str(c.plain.errors + c.secure.errors),
    ]


def _security_markdown(cells: list[SecurityCell]) -> list[str]:
    lines = [
        "## Security: mTLS + request tokens + authorization vs the same calls without",
        "",
        "`plain` is the eblock side above. Side `mtls`: the same Block and MeshClient with "
        "mTLS (strict, keep-alive, TLS 1.3, P-256) and default-deny authorization with two "
        "rules. Side `secure`: `mtls` plus a fresh ES256 token per request (minted by the "
        "client, verified with the replay check by the server).",
        "",
        "| " + " | ".join(_SECURITY_COLUMNS) + " |",
        "|" + "|".join("---:" for _ in _SECURITY_COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_security_row(c)) + " |" for c in cells]
    return lines


_SIDECAR_COLUMNS = (
    "side",
    "size",
    "concurrency",
    "direct req/s",
    "sidecar req/s",
    "ratio",
    "direct p50/p99 ms",
    "sidecar p50/p99 ms",
    "added p50 ms",
    "server µs/req direct/proxy",
    "errors",
)


def _sidecar_markdown(cells: list[SecurityCell]) -> list[str]:
    lines = [
        "## Sidecar: the same calls direct and through `eblocks proxy`",
        "",
        "`direct` is the bare side above (aiohttp client -> aiohttp echo). Side `sidecar`: "
        "the same client and server with `eblocks proxy` (its own process, plaintext) in "
        "between; compare with the eblock side above, the in-process path. Server CPU of "
        "the sidecar side is the proxy's alone.",
        "",
        "| " + " | ".join(_SIDECAR_COLUMNS) + " |",
        "|" + "|".join("---:" for _ in _SIDECAR_COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_security_row(c)) + " |" for c in cells]
    return lines


def sidecar_table(report: OverheadReport) -> Table:
    table = Table(title="sidecar: direct vs through eblocks proxy (medians)")
    for column in _SIDECAR_COLUMNS:
        table.add_column(column, justify="right")
    for c in report.sidecar_cells:
        table.add_row(*_security_row(c))
    return table


def security_table(report: OverheadReport) -> Table:
    table = Table(title="security: mtls (+ authz), secure (+ tokens) vs plain eblock (medians)")
    for column in _SECURITY_COLUMNS:
        table.add_column(column, justify="right")
    for c in report.security_cells:
        table.add_row(*_security_row(c))
    return table


_POLICY_COLUMNS = (
    "size",
    "concurrency",
    "none req/s",
    "policies req/s",
    "ratio",
    "none p50/p99 ms",
    "policies p50/p99 ms",
    "added p50 ms",
    "server µs/req none/policies",
    "errors",
)


def _policy_row(c: PolicyCell) -> list[str]:
    return [
        _size(c.size),
        str(c.concurrency),
        f"{c.none.rps:,.0f}",
        f"{c.policies.rps:,.0f}",
        f"{c.rps_ratio:.2f}",
        f"{c.none.p50_ms:.3f} / {c.none.p99_ms:.3f}",
        f"{c.policies.p50_ms:.3f} / {c.policies.p99_ms:.3f}",
        f"{c.p50_added_ms:+.3f}",
        f"{c.none.server_cpu_us:.0f} / {c.policies.server_cpu_us:.0f}",
        str(c.none.errors + c.policies.errors),
    ]


def _policies_markdown(cells: list[PolicyCell]) -> list[str]:
    lines = [
        "## Policies: every layer configured, none triggering, vs no policies",
        "",
        "`none` is the eblock side above. Side `policies`: the same Block and MeshClient with "
        "a route matching every call (one destination, mirror 0 %, timeouts, retries), a "
        "retry budget, outlier detection, connection limits, a per-source rate limit and a "
        "bulkhead far above the load, and a fault rule for a header nobody sends.",
        "",
        "| " + " | ".join(_POLICY_COLUMNS) + " |",
        "|" + "|".join("---:" for _ in _POLICY_COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_policy_row(c)) + " |" for c in cells]
    return lines


def policy_layers_lines(cost: dict[str, Any]) -> list[str]:
    """The in-process CPU cost of the inbound policy layers, as Markdown."""
    per_call, added = cost["us_per_call"], cost["added_us"]
    lines = [
        "Inbound policy layers alone, in process (CPU µs per call, median of "
        f"{cost['rounds']} rounds x {cost['calls']:,} calls; no sockets, so a busy machine "
        "moves it far less than the figures above):",
        "",
        "| variant | µs per call | added µs |",
        "|---|---:|---:|",
    ]
    for name, value in per_call.items():
        extra = added.get(name)
        lines.append(f"| {name} | {value:.2f} | {'' if extra is None else f'{extra:+.2f}'} |")
    return lines


def policies_table(report: OverheadReport) -> Table:
    table = Table(title="policies: all configured, none triggering, vs none (medians)")
    for column in _POLICY_COLUMNS:
        table.add_column(column, justify="right")
    for c in report.policy_cells:
        table.add_row(*_policy_row(c))
    return table


def console_table(report: OverheadReport) -> Table:
    table = Table(title="eblocks bench overhead (medians over rounds)")
    for column in _COLUMNS:
        table.add_column(column, justify="right")
    for c in report.cells:
        row = _row(c)
        if c.bare.errors + c.eblock.errors:
            row[-1] = f"[bold red]{row[-1]}[/]"
        table.add_row(*row)
    return table


def write_chart(report: OverheadReport, path: Path) -> bool:
    """Req/s and p50 side by side per cell; False when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    labels = [f"{_size(c.size)}\nx{c.concurrency}" for c in report.cells]
    xs = list(range(len(labels)))
    width = 0.38
    bars = ((-width / 2, "bare", "#8c8c8c"), (width / 2, "eblock", "#2a6fdb"))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    rps_ax, lat_ax = fig.subplots(1, 2)
    panels = (
        (rps_ax, "rps", "req/s (higher is better)"),
        (lat_ax, "p50_ms", "p50 latency, ms, log scale (lower is better)"),
    )
    for ax, attr, title in panels:
        for offset, kind, color in bars:
            values = [getattr(getattr(c, kind), attr) for c in report.cells]
            ax.bar([x + offset for x in xs], values, width, label=kind, color=color)
        ax.set_xticks(xs, labels)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    lat_ax.set_yscale("log")  # c=1 (tenths of a ms) and c=32 (ms) on one axis
    for x, c in zip(xs, report.cells, strict=True):
        top = (x + width / 2, c.eblock.rps)
        rps_ax.annotate(f"{c.rps_ratio:.2f}", top, ha="center", va="bottom", fontsize=8)
        top = (x + width / 2, c.eblock.p50_ms)
        lat_ax.annotate(f"{c.p50_added_ms:+.2f}", top, ha="center", va="bottom", fontsize=8)
    rps_ax.legend()
    fig.suptitle("Eblock path vs bare aiohttp, echo (above the eblock bars: ratio, added ms)")
    fig.savefig(path, dpi=110)
    return True
