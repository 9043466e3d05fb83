"""The typer app: one module per command group, registered here."""

from __future__ import annotations

import typer

from eblocks.cli import bench_cmds, client_cmds, discovery_cmds, run_cmds, spec_cmds

__all__ = ["app", "main"]

app = typer.Typer(
    name="eblocks",
    help="Eblocks: a decentralized service mesh with processing patterns built in.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
spec_cmds.register(app)
run_cmds.register(app)
client_cmds.register(app)
app.add_typer(bench_cmds.bench, name="bench")
discovery_cmds.register(app, bench_cmds.bench)


def main() -> None:
    app()
