"""`eblocks bench ...`: benchmarks run side by side in one process tree."""

from __future__ import annotations

import typer

__all__ = ["bench"]

bench = typer.Typer(
    help="Benchmarks: side-by-side comparisons, JSON + Markdown under bench/results/.",
    no_args_is_help=True,
)
