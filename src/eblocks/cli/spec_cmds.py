"""`eblocks validate` and `eblocks schema`."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from eblocks.cli.common import console, load_or_exit

__all__ = ["register"]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def validate(spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec")) -> None:
    """Check a spec; exit 0 when valid, 2 with every problem listed when not."""
    mesh = load_or_exit(spec)
    console.print(
        f"{spec}: valid — mesh {mesh.mesh!r}, {_count(len(mesh.blocks), 'block')}, "
        f"{_count(len(mesh.patterns), 'pattern')}"
    )


def schema() -> None:
    """Print the JSON Schema of mesh.yaml (for editors and validators)."""
    from eblocks.spec import json_schema  # the models: only for this command

    typer.echo(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode())


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
