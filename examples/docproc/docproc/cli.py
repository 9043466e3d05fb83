"""`eblocks docproc ...`: the case study's commands, plugged into the eblocks CLI."""

from __future__ import annotations

import typer

from docproc import analysis_cli, commands
from docproc.keys_cli import keys

__all__ = ["docproc", "register"]

docproc = typer.Typer(
    help="The docproc case study: corpus, scenarios and the paper's experiment.",
    no_args_is_help=True,
)
docproc.add_typer(keys, name="keys")
analysis_cli.register(docproc)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Entry point ``eblocks.cli``: add the ``docproc`` group (and its benchmarks)."""
    docproc.command("demo")(commands.demo)
    bench.command("docproc")(commands.bench_docproc)
    app.add_typer(docproc, name="docproc")
