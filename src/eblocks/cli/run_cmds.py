"""`eblocks up | status | logs | down`: the local supervisor from the shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from eblocks.cli.common import console, fail, load_or_exit, state_or_exit
from eblocks.errors import SupervisorError
from eblocks.runtime.state import StateDir, pid_alive, read_json, running

if TYPE_CHECKING:  # the supervisor and the spec's models: imported by the commands that run
    from eblocks.spec import MeshSpec

__all__ = ["register"]

STATE_OPTION = typer.Option(
    None, "--state-dir", help="state root (default .eblocks or $EBLOCKS_STATE_DIR)"
)
MESH_OPTION = typer.Option(None, "--mesh", help="mesh name (default: the only one running)")


def up(
    spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec"),
    detach: bool = typer.Option(False, "--detach", "-d", help="run in the background"),
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Start every block of the mesh on this machine and wait until all are ready."""
    mesh = load_or_exit(spec)
    state = StateDir.for_mesh(mesh.mesh, state_dir)
    if running(state):
        pid = (read_json(state.supervisor) or {}).get("pid")
        down = "eblocks down" + (f" --state-dir {shlex.quote(str(state_dir))}" if state_dir else "")
        fail(f"mesh {mesh.mesh!r} is already running (supervisor pid {pid}); stop it with `{down}`")
    state.create()  # here, before a detached supervisor: an unusable dir is said at once
    if detach:
        _detach(spec, mesh, state)
        return
    try:
        code = asyncio.run(_foreground(mesh, spec, state))
    except SupervisorError as exc:
        fail(str(exc))
    raise typer.Exit(code)


async def _foreground(mesh: MeshSpec, spec: Path, state: StateDir) -> int:
    from eblocks.runtime.supervisor import Supervisor

    supervisor = Supervisor(mesh, spec, state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.create_task(supervisor.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises SupervisorError when start failed
            _print_status(state)
            console.print(f"mesh [bold]{mesh.mesh}[/] is up; Ctrl-C or `eblocks down` stops it")
            await stopped
        else:
            starting.cancel()
    finally:
        await supervisor.stop()
    console.print(f"mesh {mesh.mesh} stopped")
    return 0


def _detach(spec: Path, mesh: MeshSpec, state: StateDir) -> None:
    state.create()
    state.supervisor.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "eblocks",
        "up",
        str(spec.absolute()),
        "--state-dir",
        str(state.path.parent),
    ]
    pid = _spawn_detached(cmd, state.path / "supervisor.log")
    deadline = time.monotonic() + mesh.defaults.ready_timeout + 10
    while time.monotonic() < deadline:
        info = read_json(state.supervisor) or {}
        if info.get("status") == "ready":
            _print_status(state)
            return
        if info.get("status") in {"failed", "stopped"} or _exited(pid):
            # The supervisor stops its instances before it exits: wait for that, so a
            # failed `up` leaves no process behind (and none to clobber a new `up`).
            grace = time.monotonic() + max(mesh.settings(b).drain for b in mesh.blocks) + 10
            while not _exited(pid) and time.monotonic() < grace:
                time.sleep(0.1)
            info = read_json(state.supervisor) or info
            fail(f"mesh {mesh.mesh!r} failed to start: {info.get('error') or 'see supervisor.log'}")
        time.sleep(0.1)
    fail(f"mesh {mesh.mesh!r} not ready in time; see {state.path / 'supervisor.log'}")


def _spawn_detached(cmd: list[str], log: Path) -> int:
    """Start ``cmd`` in its own session, output appended to ``log``; returns its pid.

    posix_spawn rather than Popen: the supervisor is meant to outlive this
    command, and a Popen object would warn that its child is still running.
    """
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, null, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, out, 2),
        ]
        return os.posix_spawn(cmd[0], cmd, dict(os.environ), file_actions=actions, setsid=True)
    finally:
        os.close(out)
        os.close(null)


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited (reaping it if so)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def status(mesh: str | None = MESH_OPTION, state_dir: Path | None = STATE_OPTION) -> None:
    """Show every instance: block, pid, address, admin port, ready, restarts."""
    state = state_or_exit(mesh, state_dir)
    _print_status(state)


def _print_status(state: StateDir) -> None:
    from eblocks.cli.pool_status import pattern_table  # the spec's models: only here

    live = running(state)
    rows = (read_json(state.state) or {}).get("instances", [])
    table = Table(title=f"mesh {state.mesh} — supervisor {'running' if live else 'not running'}")
    for column in ("block", "instance", "pid", "address", "admin", "ready", "restarts", "state"):
        table.add_column(column, justify="right" if column in {"pid", "restarts"} else "left")
    errors: list[str] = []
    for row in rows:
        address = f"{row['host']}:{row['port']}" if row["port"] else "-"
        state_text = row["state"]
        if row.get("error"):  # below the table, whole: an error cut to fit a cell says nothing
            errors.append(f"[red]{escape(row['instance'])}[/]: {escape(row['error'])}")
        table.add_row(
            row["block"],
            row["instance"],
            str(row["pid"] or "-"),
            address,
            str(row.get("admin_port") or "-"),
            "yes" if row["ready"] and live else "no",
            str(row["restarts"]),
            state_text,
        )
    console.print(table)
    for line in errors:
        console.print(line)
    patterns = pattern_table(state, live)
    if patterns is not None:
        console.print(patterns)


def logs(
    block: str = typer.Argument(..., help="block whose instance logs to print"),
    tail: int = typer.Option(50, "--tail", "-n", help="lines per instance (0: all)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Print the logs of a block's instances."""
    state = state_or_exit(mesh, state_dir)
    rows = (read_json(state.state) or {}).get("instances", [])
    files = [state.log(r["instance"]) for r in rows if r["block"] == block]
    if not files:
        known = ", ".join(sorted({r["block"] for r in rows}))
        fail(f"no block {block!r} in mesh {state.mesh!r} (blocks: {known})")
    offsets: dict[Path, int] = {}
    for path in files:
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        for line in lines[-tail:] if tail else lines:
            typer.echo(f"{path.stem} | {line}")
        offsets[path] = path.stat().st_size if path.exists() else 0
    while follow:
        time.sleep(0.25)
        for path in files:
            if path.exists() and path.stat().st_size > offsets[path]:
                with path.open("rb") as fh:
                    fh.seek(offsets[path])
                    chunk = fh.read()
                offsets[path] += len(chunk)
                for line in chunk.decode(errors="replace").splitlines():
                    typer.echo(f"{path.stem} | {line}")


def down(
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
    timeout: float | None = typer.Option(
        None,
        help="seconds to wait for a clean stop before killing (default: twice the longest "
        "drain of the mesh's blocks, plus 10 s)",
    ),
) -> None:
    """Stop the mesh: drain every instance, then stop the supervisor.

    Exit 1 when an instance or the supervisor had to be killed (its work was cut).
    """
    state = state_or_exit(mesh, state_dir)
    info = read_json(state.supervisor) or {}
    pid = int(info.get("pid", 0))
    killed = False
    if pid and pid_alive(pid) and info.get("status") != "stopped":
        os.kill(pid, signal.SIGTERM)
        bound = timeout if timeout is not None else _drain_bound(state)
        deadline = time.monotonic() + bound
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
            _reap_child(pid)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            killed = True
    leftovers = _kill_instances(state)
    note = f" (killed {leftovers} stuck instances)" if leftovers else ""
    if killed or leftovers:
        fail(
            f"mesh {state.mesh} stopped by force{note}: it did not drain within the bound "
            "(give `--timeout` more than the blocks' `drain`)"
        )
    console.print(f"mesh {state.mesh} stopped{note}")


def _drain_bound(state: StateDir) -> float:
    """Twice the longest ``drain`` of the mesh's blocks (the spec it runs: the supervisor
    quiesces, then every instance drains), plus 10 s; else 30 s."""
    from eblocks.errors import SpecError
    from eblocks.spec import load_spec

    try:
        spec = load_spec(state.spec)
    except SpecError:
        return 30.0
    return 2 * max((spec.settings(b).drain for b in spec.blocks), default=10.0) + 10.0


def _reap_child(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _kill_instances(state: StateDir) -> int:
    """SIGKILL any instance the supervisor could not stop; returns how many."""
    killed = 0
    for row in (read_json(state.state) or {}).get("instances", []):
        pid = row.get("pid")
        if pid and pid_alive(int(pid)):
            run = read_json(state.run_file(row["instance"])) or {}
            if run.get("pid") == pid:  # only our own process, never a reused pid
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
    return killed


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(status)
    app.command()(logs)
    app.command()(down)
