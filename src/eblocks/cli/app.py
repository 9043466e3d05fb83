"""The typer app: one module per command group, registered here."""

from __future__ import annotations

from importlib.metadata import entry_points

import typer
from rich.markup import escape

from eblocks.cli import (
    bench_cmds,
    client_cmds,
    deploy_cmds,
    discovery_cmds,
    policy_cmds,
    proxy_cmds,
    run_cmds,
    security_cmds,
    spec_cmds,
    telemetry_cmds,
)
from eblocks.cli.common import err
from eblocks.errors import SupervisorError

__all__ = ["app", "main"]

app = typer.Typer(
    name="eblocks",
    help="Eblocks: a decentralized service mesh with processing patterns built in.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from eblocks import __version__

        typer.echo(f"eblocks {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Eblocks: a decentralized service mesh with processing patterns built in."""


spec_cmds.register(app)
policy_cmds.register(app)
run_cmds.register(app)
proxy_cmds.register(app)
client_cmds.register(app)
app.add_typer(bench_cmds.bench, name="bench")
discovery_cmds.register(app, bench_cmds.bench)
deploy_cmds.register(app)
telemetry_cmds.register(app)
security_cmds.register(app)

PLUGIN_GROUP = "eblocks.cli"


def _load_plugins() -> None:
    """Add the command groups that installed packages declare under ``eblocks.cli``.

    Each entry point names ``register(app, bench)``; the docproc case study uses it
    to add ``eblocks docproc`` and ``eblocks bench docproc`` (docs/decisions.md, D14).
    A plugin that fails to import is reported and skipped, never fatal to the CLI.
    """
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()
            register(app, bench_cmds.bench)
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            message = f"eblocks: plugin {entry.name!r} ({entry.value}) not loaded: {exc}"
            typer.echo(message, err=True)


_load_plugins()


def main() -> None:
    try:
        app()
    except SupervisorError as exc:  # a state dir that cannot be used or read: one line, not a trace
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(1) from None
