"""`eblocks members` and `eblocks bench discovery`: the mesh's membership from the shell."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from eblocks.cli.common import admin_access, console, err, fail, refresh, state_or_exit
from eblocks.cli.run_cmds import MESH_OPTION, STATE_OPTION
from eblocks.runtime import StateDir
from eblocks.runtime.state import pid_alive, read_json

__all__ = ["register"]


def _ask(state: StateDir, block: str | None) -> dict[str, Any]:
    """The view of the first running member that answers ``/v1/members``."""
    rows = (read_json(state.state) or {}).get("instances", [])
    live = [
        r
        for r in rows
        if r.get("ready") and r.get("admin_port") and r.get("pid") and pid_alive(int(r["pid"]))
    ]
    if not live:
        fail(f"no running member in mesh {state.mesh!r} (start it with `eblocks up`)")
    query = f"?block={block}" if block else ""
    access = admin_access(state)
    errors = []
    for row in live:
        url = access.row_url(row, f"/v1/members{query}")
        try:
            with urllib.request.urlopen(url, timeout=2.0, context=access.ssl) as resp:
                data: dict[str, Any] = orjson.loads(resp.read())
                return data
        except (OSError, urllib.error.URLError, orjson.JSONDecodeError) as exc:
            errors.append(f"{row['instance']}: {exc}")
    return fail("no member answered: " + "; ".join(errors))


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "now" if seconds < 0.05 else f"{seconds:.1f}s ago"


def _table(view: dict[str, Any]) -> Table:
    members = view.get("members", [])
    alive = sum(m["status"] == "alive" for m in members)
    table = Table(
        title=f"mesh {view.get('mesh')} — {view.get('mode')} view of {view.get('instance')}: "
        f"{alive}/{len(members)} alive"
    )
    for column in ("block", "instance", "address", "role", "status", "load", "last seen"):
        table.add_column(column, justify="right" if column in {"load"} else "left")
    styles = {"alive": "green", "suspect": "yellow", "dead": "red", "left": "dim"}
    for m in members:
        load = m.get("load")
        status = m["status"] + (
            "" if m.get("health", "serving") == "serving" else f" ({m['health']})"
        )
        table.add_row(
            m["block"],
            m["instance"],
            m["address"],
            ",".join(m.get("roles") or ()) or "-",
            f"[{styles.get(m['status'], '')}]{status}[/]",
            "-" if load is None else str(load["inflight"]),
            _ago(m.get("last_seen")),
        )
    return table


def members(
    block: str | None = typer.Option(None, "--block", "-b", help="only this block's members"),
    watch: bool = typer.Option(False, "--watch", "-w", help="refresh until Ctrl-C"),
    interval: float = typer.Option(1.0, min=0.1, help="seconds between refreshes (--watch)"),
    as_json: bool = typer.Option(False, "--json", help="print the view as JSON"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Show the mesh's members as a running member sees them (its /v1/members)."""
    state = state_or_exit(mesh, state_dir)
    if as_json:
        typer.echo(orjson.dumps(_ask(state, block), option=orjson.OPT_INDENT_2).decode())
        return
    if not watch:
        console.print(_table(_ask(state, block)))
        return
    refresh(lambda: _table(_ask(state, block)), interval)


def bench_discovery(
    simulate: str | None = typer.Option(
        None, "--simulate", help="simulate these member counts (comma-separated) in-process"
    ),
    members: int = typer.Option(50, min=5, max=500, help="member processes on loopback"),
    rounds: int = typer.Option(5, min=1, max=100, help="rounds (figures are medians)"),
    steady: float = typer.Option(10.0, min=1.0, help="seconds of steady traffic measured"),
    seed: int = typer.Option(1, help="RNG seed of the simulation (a run replays exactly)"),
    memory_fraction: float = typer.Option(
        0.5, min=0.05, max=0.95, help="refuse a size whose estimate exceeds this share of free RAM"
    ),
    out: Path = typer.Option(Path("bench/results"), help="directory for the results"),
) -> None:
    """Gossip membership: real member processes on loopback, or (--simulate) the simulator."""
    if simulate is None:
        _bench_loopback(members, rounds, steady, out)
        return
    from eblocks.discovery.simbench import cells, headers, run_simulations, write

    sizes = []
    for item in simulate.split(","):
        try:
            n = int(item)
        except ValueError:
            fail(f"--simulate: expected whole numbers, got {item.strip()!r}")
        if n < 3:
            fail(f"--simulate: at least 3 members, got {n}")
        sizes.append(n)
    with console.status("simulating") as status:
        report = run_simulations(
            sizes, seed=seed, memory_fraction=memory_fraction, progress=status.update
        )
    table = Table(title="discovery: simulated gossip (times in simulated seconds)")
    for title in headers():
        table.add_column(title, justify="left" if title == "start" else "right")
    for row in report["results"]:
        table.add_row(*cells(row))
    console.print(table)
    refused = [row for row in report["results"] if "refused" in row]
    for row in refused:
        err.print(f"[yellow]{row['members']} members refused:[/] {escape(str(row['refused']))}")
    if len(refused) == len(report["results"]):  # nothing measured: keep the last results
        fail("no size could be simulated within --memory-fraction; nothing written")
    for path in write(report, out):
        console.print(f"wrote {path}")


def _bench_loopback(members: int, rounds: int, steady: float, out: Path) -> None:
    import asyncio

    from eblocks.bench.discovery import run_loopback, to_markdown, write

    with console.status("discovery bench") as status:

        def progress(message: str) -> None:
            status.update(message)
            if " done: " in message:  # a round's figures: kept in the log if the run stops
                err.print(message)

        try:
            report = asyncio.run(run_loopback(members, rounds, steady=steady, progress=progress))
        except (TimeoutError, RuntimeError, OSError) as exc:
            fail(f"discovery bench failed: {exc}")
    console.print(to_markdown(report))
    for path in write(report, out):
        console.print(f"wrote {path}")


def register(app: typer.Typer, bench: typer.Typer) -> None:
    app.command()(members)
    bench.command("discovery")(bench_discovery)
