"""`eblocks validate` and `eblocks schema`."""

from __future__ import annotations

import importlib.util
from importlib.machinery import PathFinder
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from rich.markup import escape

from eblocks.cli.common import console, err, load_and_warn

if TYPE_CHECKING:
    from eblocks.spec.models import MeshSpec

__all__ = ["register"]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def validate(spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec")) -> None:
    """Check a spec; exit 0 when valid, 2 with every problem listed when not."""
    mesh = load_and_warn(spec)  # and what is valid but cannot work, file:line:col
    console.print(
        f"{spec}: valid — mesh {mesh.mesh!r}, {_count(len(mesh.blocks), 'block')}, "
        f"{_count(len(mesh.patterns), 'pattern')}"
    )
    for warning in [*missing_modules(mesh, spec.parent), *missing_extras(mesh)]:
        err.print(f"[yellow]warning:[/] {escape(f'{spec}: {warning}')}", soft_wrap=True)


def missing_extras(mesh: MeshSpec) -> list[str]:
    """The optional parts the spec asks for that are not installed here (`up` would stop)."""
    from eblocks.telemetry.tracing import OTLP_MISSING, OTLP_MODULE

    if mesh.telemetry.tracing.exporter == "otlp" and _installed(OTLP_MODULE) is None:
        return [OTLP_MISSING]
    return []


def missing_modules(mesh: MeshSpec, folder: Path) -> list[str]:
    """The blocks whose ``handler``/``app`` module is neither in ``folder`` (where `eblocks up`
    runs instances from) nor importable here: `up` would stop on them.

    Only the top-level package is looked for, and nothing is imported (no user code runs).
    """
    found = []
    for name, block in sorted(mesh.blocks.items()):
        for field, ref in (("handler", block.handler), ("app", block.app)):
            if ref is None:
                continue
            top = ref.partition(":")[0].partition(".")[0]
            if PathFinder.find_spec(top, [str(folder)]) is None and _installed(top) is None:
                found.append(
                    f"blocks.{name}.{field}: no module {top!r} in {folder.resolve()} nor "
                    f"installed; `eblocks up` cannot load {ref!r}"
                )
    return found


def _installed(top: str) -> object:
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


def schema() -> None:
    """Print the JSON Schema of mesh.yaml (for editors and validators)."""
    from eblocks.spec import json_schema  # the models: only for this command

    typer.echo(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode())


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
