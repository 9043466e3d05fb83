"""`eblocks bench ...`: benchmarks run side by side in one process tree."""

from __future__ import annotations

from pathlib import Path

import typer

from eblocks.cli.common import console, err, fail

__all__ = ["bench"]

bench = typer.Typer(
    help="Benchmarks: side-by-side comparisons, JSON + Markdown under bench/results/.",
    no_args_is_help=True,
)


def _int_list(option: str, text: str, *, sizes: bool = False) -> tuple[int, ...]:
    from eblocks.spec.units import parse_size  # pydantic: not at the CLI's start-up

    values: list[int] = []
    for item in text.split(","):
        try:
            value = parse_size(item.strip()) if sizes else int(item)
        except ValueError as exc:
            fail(f"{option}: {exc}")
        if not isinstance(value, int) or value < 1:
            fail(f"{option}: expected positive whole numbers, got {item.strip()!r}")
        values.append(value)
    return tuple(values)


@bench.command("overhead")
def overhead(
    duration: float = typer.Option(3.0, min=0.01, help="seconds measured per side and cell"),
    warmup: float = typer.Option(0.5, min=0.0, help="seconds of warm-up before each window"),
    sizes: str = typer.Option("64,4KiB,64KiB", help="body sizes, comma-separated (64, 4KiB)"),
    concurrency: str = typer.Option("1,32", help="requests in flight, comma-separated"),
    rounds: int = typer.Option(3, min=1, help="rounds; bare/eblock order alternates each round"),
    out: Path = typer.Option(Path("bench/results"), help="directory for the results"),
    security: bool = typer.Option(
        False, "--security", help="add a side with mTLS + request tokens + authorization"
    ),
    policies: bool = typer.Option(
        False, "--policies", help="add a side with every policy configured, none triggering"
    ),
    sidecar: bool = typer.Option(
        False,
        "--sidecar",
        help="add the bare calls through a pair of `eblocks proxy` and a pair of nginx",
    ),
    telemetry: bool = typer.Option(
        False,
        "--telemetry",
        help="add sides with per-request telemetry off, and with metrics + tracing at 10%",
    ),
) -> None:
    """Echo through bare aiohttp and through the Eblock stack, side by side."""
    from eblocks.bench.overhead import BenchError, OverheadSettings, run_overhead
    from eblocks.bench.report import (
        console_table,
        policies_table,
        security_table,
        sidecar_table,
        telemetry_table,
        write_results,
    )

    try:
        settings = OverheadSettings(
            duration=duration,
            warmup=warmup,
            sizes=_int_list("--sizes", sizes, sizes=True),
            concurrency=_int_list("--concurrency", concurrency),
            rounds=rounds,
            security=security,
            policies=policies,
            sidecar=sidecar,
            telemetry=telemetry,
        )
    except ValueError as exc:
        fail(str(exc))
    with console.status("starting servers") as status:
        try:
            report = run_overhead(settings, progress=lambda text: status.update(text))
        except BenchError as exc:
            fail(str(exc))
    console.print(console_table(report))
    if report.security_cells:
        console.print(security_table(report))
    if report.policy_cells:
        console.print(policies_table(report))
    if report.policy_layers:
        added = report.policy_layers["added_us"]
        console.print(
            "inbound policy layers, CPU µs per call added (in process): "
            f"no rules {added['no rules']:+.2f}, every rule {added['every rule']:+.2f}"
        )
    if report.policy_client_layers:
        added = report.policy_client_layers["added_us"]
        console.print(
            "client policy layers, CPU µs per call added (in process): "
            f"every rule {added['every rule']:+.2f}"
        )
    if report.sidecar_cells:
        console.print(sidecar_table(report))
    if report.telemetry_cells:
        console.print(telemetry_table(report))
    for target in report.targets:
        mark = "[green]met[/]" if target.ok else "[bold red]missed[/]"
        console.print(
            f"target {target.name} @ {target.size} B x{target.concurrency}: "
            f"{target.value:.3f} (limit {target.limit}) {mark}"
        )
    sides = [
        ("security", security),
        ("policies", policies),
        ("sidecar", sidecar),
        ("telemetry", telemetry),
    ]
    name = "-".join(["overhead", *(side for side, on in sides if on)])
    for path in write_results(report, out, name):
        console.print(f"wrote {path}")
    if report.errors:
        err.print(f"[bold red]{report.errors} request(s) failed[/]; see error_kinds in the JSON")
        raise typer.Exit(1)


@bench.command("patterns")
def patterns(
    duration: float = typer.Option(3.0, min=0.01, help="seconds measured per configuration"),
    warmup: float = typer.Option(0.5, min=0.0, help="seconds of warm-up before each window"),
    rounds: int = typer.Option(3, min=1, help="rounds; the configuration order rotates"),
    work_ms: float = typer.Option(20.0, help="CPU milliseconds of one task"),
    concurrency: int = typer.Option(8, min=1, help="tasks in flight"),
    workers: str = typer.Option("1,2", help="manager-worker pool sizes, comma-separated"),
    parts: int = typer.Option(4, help="parts a divide-conquer task is split into"),
    reaction: bool = typer.Option(True, help="measure the autoscaler's scale-up reaction"),
    out: Path = typer.Option(Path("bench/results"), help="directory for the results"),
) -> None:
    """The same CPU-bound work through pipeline, manager-worker and divide-conquer."""
    from eblocks.bench.overhead import BenchError
    from eblocks.bench.patterns import PatternSettings, run_patterns
    from eblocks.bench.patterns_report import console_table, write_results
    from eblocks.errors import SupervisorError

    try:
        settings = PatternSettings(
            duration=duration,
            warmup=warmup,
            rounds=rounds,
            work_ms=work_ms,
            concurrency=concurrency,
            workers=_int_list("--workers", workers),
            parts=parts,
            reaction=reaction,
        )
    except ValueError as exc:
        fail(str(exc))
    with console.status("starting") as status:
        try:
            report = run_patterns(settings, progress=lambda text: status.update(text))
        except (BenchError, SupervisorError) as exc:
            fail(str(exc))
    console.print(console_table(report))
    if report.reaction_s is not None:
        console.print(f"scale-up reaction (median): {report.reaction_s:.2f} s")
    for path in write_results(report, out, "patterns"):
        console.print(f"wrote {path}")
    if report.errors:
        err.print(f"[bold red]{report.errors} task(s) failed[/]; see error_kinds in the JSON")
        raise typer.Exit(1)


@bench.command("telemetry")
def telemetry(
    calls: int = typer.Option(20_000, min=100, help="calls per variant and round"),
    rounds: int = typer.Option(5, min=1, help="rounds; the variants are interleaved in each"),
    out: Path = typer.Option(Path("bench/results"), help="directory for telemetry.json"),
) -> None:
    """CPU time per request of the telemetry paths (off, metrics, tracing 10%, access log)."""
    import orjson
    from rich.table import Table

    from eblocks.bench.telemetry import run_telemetry_bench

    with console.status("measuring") as status:
        result = run_telemetry_bench(calls, rounds, progress=lambda text: status.update(text))
    table = Table(title=f"telemetry cost, CPU µs per call (median of {rounds} rounds)")
    for column in ("side", "variant", "µs per call", "added µs"):
        table.add_column(column, justify="left" if column in ("side", "variant") else "right")
    for row in result["rows"]:
        table.add_row(
            row["side"], row["variant"], f"{row['us_per_call']:.2f}", f"{row['added_us']:+.2f}"
        )
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "telemetry.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    console.print(f"wrote {path}")
