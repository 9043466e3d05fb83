"""Write an overhead run as JSON (everything), Markdown (the table) and a PNG chart."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.table import Table

from eblocks.bench.overhead import CellResult, OverheadReport, PolicyCell, SecurityCell, Side

__all__ = [
    "console_table",
    "policies_table",
    "security_table",
    "sidecar_table",
    "telemetry_table",
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
        "policy_client_layers": report.policy_client_layers,
        "sidecar_cells": [dataclasses.asdict(c) for c in report.sidecar_cells],
        "telemetry_cells": [dataclasses.asdict(c) for c in report.telemetry_cells],
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
    ]
    lines += _table(_COLUMNS, [_row(c) for c in report.cells])
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
    if report.policy_client_layers:
        lines += ["", *policy_layers_lines(report.policy_client_layers, side="Client")]
    if report.sidecar_cells:
        lines += ["", *_sidecar_markdown(report)]
    if report.telemetry_cells:
        lines += ["", *_telemetry_markdown(report.telemetry_cells)]
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


def _side_row(c: SecurityCell) -> list[str]:
    """A named side against its baseline (a secured side, or a telemetry side spelled out)."""
    return [
        _TELEMETRY_SIDES.get(c.side, c.side),
        *_compared(c.size, c.concurrency, c.plain, c.secure, c.rps_ratio, c.p50_added_ms),
    ]


def _compared(
    size: int, concurrency: int, base: Side, side: Side, rps_ratio: float, p50_added_ms: float
) -> list[str]:
    """A side against its baseline: req/s, ratio, p50/p99, added p50, server CPU, errors."""
    return [
        _size(size),
        str(concurrency),
        f"{base.rps:,.0f}",
        f"{side.rps:,.0f}",
        f"{rps_ratio:.2f}",
        f"{base.p50_ms:.3f} / {base.p99_ms:.3f}",
        f"{side.p50_ms:.3f} / {side.p99_ms:.3f}",
        f"{p50_added_ms:+.3f}",
        f"{base.server_cpu_us:.0f} / {side.server_cpu_us:.0f}",
        str(base.errors + side.errors),
    ]


def _table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table, every column right-aligned."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _console(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A rich table for the terminal, every column right-aligned."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def _section(
    title: str, text: str, columns: Sequence[str], rows: Iterable[Sequence[str]]
) -> list[str]:
    """A Markdown section of the report: its heading, what it compares, its table."""
    return [title, "", text, "", *_table(columns, rows)]


def _security_markdown(cells: list[SecurityCell]) -> list[str]:
    return _section(
        "## Security: mTLS + request tokens + authorization vs the same calls without",
        "`plain` is the eblock side above. Side `mtls`: the same Block and MeshClient with "
        "mTLS (strict, keep-alive, TLS 1.3, P-256) and default-deny authorization with two "
        "rules. Side `secure`: `mtls` plus a required ES256 request token on every call, with "
        "the default `tokens.reuse` (the client reuses a token per target for half its ttl; "
        "the server verifies it once, then accepts it again only over mTLS from the identity "
        "it names).",
        _SECURITY_COLUMNS,
        [_side_row(c) for c in cells],
    )


_SIDECAR_COLUMNS = (
    "size",
    "concurrency",
    "side",
    "req/s",
    "p50 ms",
    "p99 ms",
    "req/s ratio",
    "p99 ratio",
    "added p50 ms",
    "server µs/req",
    "errors",
)
_SIDE_NAMES = {"bare": "direct", "eblock": "eblock (in process)"}


def _sidecar_rows(report: OverheadReport) -> list[list[str]]:
    """Per cell: direct, the in-process eblock path and each pair, ratios against direct."""
    pairs: dict[tuple[int, int], list[SecurityCell]] = {}
    for p in report.sidecar_cells:
        pairs.setdefault((p.size, p.concurrency), []).append(p)
    rows: list[list[str]] = []
    for c in report.cells:
        sides = [
            ("bare", c.bare, None),
            ("eblock", c.eblock, (c.rps_ratio, c.p99_ratio, c.p50_added_ms)),
        ]
        sides += [
            (p.side, p.secure, (p.rps_ratio, p.p99_ratio, p.p50_added_ms))
            for p in pairs.get((c.size, c.concurrency), [])
        ]
        for kind, side, ratios in sides:
            rows.append(
                [
                    _size(c.size),
                    str(c.concurrency),
                    _SIDE_NAMES.get(kind, kind),
                    f"{side.rps:,.0f}",
                    f"{side.p50_ms:.3f}",
                    f"{side.p99_ms:.3f}",
                    "1" if ratios is None else f"{ratios[0]:.2f}",
                    "1" if ratios is None else f"{ratios[1]:.2f}",
                    "" if ratios is None else f"{ratios[2]:+.3f}",
                    f"{side.server_cpu_us:.0f}",
                    str(side.errors),
                ]
            )
    return rows


def _sidecar_markdown(report: OverheadReport) -> list[str]:
    return _section(
        "## Sidecars: the same call direct, in process, through two pairs of proxies",
        "`direct`: the bare side above (aiohttp client -> aiohttp echo). `eblock`: the "
        "in-process path above (MeshClient -> Block). `sidecar-pair`: the direct client "
        "and server with two `eblocks proxy` in between (the caller's upstream port and its "
        "client stack -> mTLS -> the server's proxy -> the app). `nginx-pair`: the same with "
        "two nginx (`proxy_pass` to a keep-alive upstream on both hops, plaintext). Ratios "
        "are medians of the per-round ratios against direct (req/s: higher is better, p99: "
        "lower is better); `server µs/req` is the CPU of the server process, or of both "
        "proxies for a pair.",
        _SIDECAR_COLUMNS,
        _sidecar_rows(report),
    )


def sidecar_table(report: OverheadReport) -> Table:
    title = "sidecars: direct, in process, eblocks pair, nginx pair (medians)"
    return _console(title, _SIDECAR_COLUMNS, _sidecar_rows(report))


def security_table(report: OverheadReport) -> Table:
    title = "security: mtls (+ authz), secure (+ tokens) vs plain eblock (medians)"
    return _console(title, _SECURITY_COLUMNS, map(_side_row, report.security_cells))


_TELEMETRY_SIDES = {"eblock": "metrics", "telemetry": "metrics + tracing 10%"}
_TELEMETRY_COLUMNS = (
    "side",
    "size",
    "concurrency",
    "off req/s",
    "side req/s",
    "ratio",
    "off p50/p99 ms",
    "side p50/p99 ms",
    "added p50 ms",
    "server µs/req off/side",
    "errors",
)


def _telemetry_markdown(cells: list[SecurityCell]) -> list[str]:
    return _section(
        "## Telemetry: metrics, and metrics + tracing at 10 %, vs per-request telemetry off",
        "`off`: side `telemetry-off`, the same MeshClient -> Block with per-request telemetry "
        "off on both ends (what `telemetry: {metrics: false}` gives: no counting layer, no "
        "span). `metrics`: the eblock side above (a block's default: counters and windows on "
        "both ends). `metrics + tracing 10%`: side `telemetry`, metrics plus OpenTelemetry on "
        "both ends, new traces sampled at 10 %, spans batched by the SDK's processor into an "
        "exporter that drops them. Ratios and added p50 are medians of the per-round figures "
        "against `off`.",
        _TELEMETRY_COLUMNS,
        [_side_row(c) for c in cells],
    )


def telemetry_table(report: OverheadReport) -> Table:
    title = "telemetry: metrics, metrics + tracing 10% vs off (medians)"
    return _console(title, _TELEMETRY_COLUMNS, map(_side_row, report.telemetry_cells))


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
    return _compared(c.size, c.concurrency, c.none, c.policies, c.rps_ratio, c.p50_added_ms)


def _policies_markdown(cells: list[PolicyCell]) -> list[str]:
    return _section(
        "## Policies: every layer configured, none triggering, vs no policies",
        "`none` is the eblock side above. Side `policies`: the same Block and MeshClient with "
        "a route matching every call (one destination, mirror 0 %, timeouts, retries), a "
        "retry budget, outlier detection, connection limits, a per-source rate limit and a "
        "bulkhead far above the load, and a fault rule for a header nobody sends.",
        _POLICY_COLUMNS,
        [_policy_row(c) for c in cells],
    )


def policy_layers_lines(cost: dict[str, Any], side: str = "Inbound") -> list[str]:
    """The in-process CPU cost of one side's policy layers (`policy_cost.py`), as Markdown."""
    per_call, added = cost["us_per_call"], cost["added_us"]
    lines = [
        f"{side} policy layers alone, in process (CPU µs per call, median of "
        f"{cost['rounds']} rounds x {cost['calls']:,} calls; added: median of the per-round "
        "differences; no sockets, so a busy machine moves it far less than the figures above):",
        "",
        "| variant | µs per call | added µs |",
        "|---|---:|---:|",
    ]
    for name, value in per_call.items():
        extra = added.get(name)
        lines.append(f"| {name} | {value:.2f} | {'' if extra is None else f'{extra:+.2f}'} |")
    return lines


def policies_table(report: OverheadReport) -> Table:
    title = "policies: all configured, none triggering, vs none (medians)"
    return _console(title, _POLICY_COLUMNS, map(_policy_row, report.policy_cells))


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


_COLORS = {
    "bare": "#8c8c8c",
    "eblock": "#2a6fdb",
    "sidecar-pair": "#e07b00",
    "nginx-pair": "#2e9e44",
}


def write_chart(report: OverheadReport, path: Path) -> bool:
    """Req/s and p50 side by side per cell and side; False when matplotlib is not installed.

    With the sidecar pairs, each pair's bars sit next to direct (bare) and eblock.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    values: dict[str, dict[tuple[int, int], tuple[float, float, float, float]]] = {}
    for c in report.cells:
        key = (c.size, c.concurrency)
        values.setdefault("bare", {})[key] = (c.bare.rps, c.bare.p50_ms, 1.0, 0.0)
        values.setdefault("eblock", {})[key] = (
            c.eblock.rps,
            c.eblock.p50_ms,
            c.rps_ratio,
            c.p50_added_ms,
        )
    for p in report.sidecar_cells:
        values.setdefault(p.side, {})[(p.size, p.concurrency)] = (
            p.secure.rps,
            p.secure.p50_ms,
            p.rps_ratio,
            p.p50_added_ms,
        )
    keys = [(c.size, c.concurrency) for c in report.cells]
    labels = [f"{_size(size)}\nx{conc}" for size, conc in keys]
    xs = list(range(len(labels)))
    kinds = list(values)
    width = 0.8 / len(kinds)
    fig = Figure(figsize=(11 + 2 * (len(kinds) - 2), 4.2), layout="constrained")
    rps_ax, lat_ax = fig.subplots(1, 2)
    panels = (
        (rps_ax, 0, 2, "req/s (higher is better)", "{:.2f}"),
        (lat_ax, 1, 3, "p50 latency, ms, log scale (lower is better)", "{:+.2f}"),
    )
    for ax, value_at, note_at, title, note in panels:
        for i, kind in enumerate(kinds):
            offset = (i - (len(kinds) - 1) / 2) * width
            row = [values[kind].get(key, (0.0, 0.0, 0.0, 0.0)) for key in keys]
            bars = [x + offset for x in xs]
            color = _COLORS.get(kind, "#555555")
            ax.bar(bars, [v[value_at] for v in row], width, label=kind, color=color)
            if kind == "bare":
                continue
            for x, v in zip(bars, row, strict=True):
                ax.annotate(
                    note.format(v[note_at]), (x, v[value_at]), ha="center", va="bottom", fontsize=7
                )
        ax.set_xticks(xs, labels)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    lat_ax.set_yscale("log")  # c=1 (tenths of a ms) and c=32 (ms) on one axis
    rps_ax.legend()
    fig.suptitle("Echo: bare aiohttp vs each side (above the bars: ratio, added ms vs bare)")
    fig.savefig(path, dpi=110)
    return True
