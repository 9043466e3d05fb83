"""Helpers shared by the command modules: consoles, errors, spec loading."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from eblocks.errors import SpecError, SupervisorError
from eblocks.runtime import StateDir, find_state
from eblocks.spec import MeshSpec, load_spec

__all__ = ["EXIT_INVALID", "console", "err", "fail", "load_or_exit", "state_or_exit"]

EXIT_INVALID = 2
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def load_or_exit(path: Path) -> MeshSpec:
    """Load a spec or print every issue and exit 2."""
    try:
        return load_spec(path)
    except SpecError as exc:
        typer.echo(str(exc), err=True)  # plain text: one issue per line, never re-wrapped
        raise typer.Exit(EXIT_INVALID) from exc


def state_or_exit(mesh: str | None, root: Path | None) -> StateDir:
    """The state dir of ``mesh`` (or of the only mesh), or a clear error and exit 1."""
    try:
        return find_state(mesh, root)
    except SupervisorError as exc:
        fail(str(exc))
