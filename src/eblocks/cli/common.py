"""Helpers shared by the command modules: consoles, errors, spec loading, the admin API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape

from eblocks.errors import SecurityError, SpecError, SpecIssue, SupervisorError
from eblocks.runtime.state import StateDir, find_state

if TYPE_CHECKING:  # the spec's models and the mesh are imported by the commands that use them
    from eblocks.security.admin import AdminAccess
    from eblocks.spec import MeshSpec

__all__ = [
    "EXIT_INVALID",
    "admin_access",
    "console",
    "duration_option",
    "err",
    "fail",
    "load_and_warn",
    "load_or_exit",
    "refresh",
    "state_or_exit",
]

EXIT_INVALID = 2
_PIPED_WIDTH = 200
"""The width tables are laid out in when the output is no terminal (a file, a pipe): rich's
default there is 80 columns, which cuts names short; ``COLUMNS`` still wins."""


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, width=_PIPED_WIDTH)
    return console


console = _console()
err = _console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def load_or_exit(path: Path, warnings: list[SpecIssue] | None = None) -> MeshSpec:
    """Load a spec or print every issue and exit 2; ``warnings`` gets what cannot work."""
    from eblocks.spec import load_spec

    try:
        return load_spec(path, warnings=warnings)
    except SpecError as exc:
        typer.echo(str(exc), err=True)  # plain text: one issue per line, never re-wrapped
        raise typer.Exit(EXIT_INVALID) from exc


def load_and_warn(path: Path) -> MeshSpec:
    """`load_or_exit`, then every warning printed (file:line:col): what is valid but cannot
    work as written, in the spec (`check_warnings`) and its policies (routes never reached)."""
    from eblocks.policies.lint import unreachable_routes
    from eblocks.spec.marks import SpecMarks

    found: list[SpecIssue] = []
    mesh = load_or_exit(path, found)
    routes = list(unreachable_routes(mesh.policies))
    if routes:
        marks = SpecMarks.of_file(path)
        found += [i for i in (marks.issue(loc, m) for loc, m in routes) if i not in found]
    for issue in sorted(found, key=lambda i: (i.line, i.column, i.path)):
        err.print(f"[yellow]warning:[/] {escape(str(issue))}", soft_wrap=True)
    return mesh


def state_or_exit(mesh: str | None, root: Path | None) -> StateDir:
    """The state dir of ``mesh`` (or of the only mesh), or a clear error and exit 1."""
    try:
        return find_state(mesh, root)
    except SupervisorError as exc:
        fail(str(exc))


def admin_access(state: StateDir, code: int = 1) -> AdminAccess:
    """How the CLI reaches the running mesh's admin ports: https with its SVID where TLS.

    The scheme of each block follows from the spec the mesh runs (``spec.yaml``
    in the state dir); the certificate is the CLI's (``client/cli``).
    """
    from eblocks.security.admin import AdminAccess
    from eblocks.security.local import CLI_HOLDER
    from eblocks.spec import load_spec

    try:
        return AdminAccess.of(load_spec(state.spec), state.path, CLI_HOLDER)
    except (SpecError, SecurityError) as exc:
        fail(f"cannot reach the admin API of mesh {state.mesh!r}: {exc}", code)


def duration_option(value: str) -> float:
    """A typer callback: seconds from ``3600``, ``30m``, ``1h`` (as durations in the spec)."""
    from eblocks.spec.units import parse_duration

    try:
        seconds = parse_duration(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    assert isinstance(seconds, float)  # a str always parses to seconds or raises
    if seconds <= 0:
        raise typer.BadParameter(f"must be more than 0, got {value!r}")
    return seconds


def refresh(frame: Callable[[], RenderableType], interval: float, iterations: int = 0) -> None:
    """Show ``frame()`` every ``interval`` seconds, ``iterations`` times (0: until Ctrl-C).

    On a terminal the frame is redrawn in place; into a file or a pipe each
    frame is printed after the last as soon as it is made (``top -b``), so a
    reader sees every one, not only the last when the command stops.
    """
    done = 0
    try:
        if not console.is_terminal:
            while True:
                console.print(frame())
                console.file.flush()
                done += 1
                if iterations and done >= iterations:
                    return
                time.sleep(interval)
        with Live(frame(), console=console, auto_refresh=False) as live:
            done = 1
            while iterations == 0 or done < iterations:
                time.sleep(interval)
                live.update(frame(), refresh=True)
                done += 1
    except KeyboardInterrupt:
        pass
