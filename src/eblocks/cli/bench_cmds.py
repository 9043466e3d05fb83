"""`eblocks bench ...`: benchmarks run side by side in one process tree."""

from __future__ import annotations

from pathlib import Path

import typer

from eblocks.cli.common import console, err, fail
from eblocks.spec.units import parse_size

__all__ = ["bench"]

bench = typer.Typer(
    help="Benchmarks: side-by-side comparisons, JSON + Markdown under bench/results/.",
    no_args_is_help=True,
)


def _int_list(option: str, text: str, *, sizes: bool = False) -> tuple[int, ...]:
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
) -> None:
    """Echo through bare aiohttp and through the Eblock stack, side by side."""
    from eblocks.bench.overhead import BenchError, OverheadSettings, run_overhead
    from eblocks.bench.report import console_table, security_table, write_results

    try:
        settings = OverheadSettings(
            duration=duration,
            warmup=warmup,
            sizes=_int_list("--sizes", sizes, sizes=True),
            concurrency=_int_list("--concurrency", concurrency),
            rounds=rounds,
            security=security,
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
    for target in report.targets:
        mark = "[green]met[/]" if target.ok else "[bold red]missed[/]"
        console.print(
            f"target {target.name} @ {target.size} B x{target.concurrency}: "
            f"{target.value:.3f} (limit {target.limit}) {mark}"
        )
    name = "overhead-security" if security else "overhead"
    for path in write_results(report, out, name):
        console.print(f"wrote {path}")
    if report.errors:
        err.print(f"[bold red]{report.errors} request(s) failed[/]; see error_kinds in the JSON")
        raise typer.Exit(1)
