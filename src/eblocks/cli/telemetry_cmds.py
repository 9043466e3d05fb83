"""`eblocks stat | top | tap`: the mesh's golden metrics and live requests from the shell.

Decentralised, as the mesh is: every running instance is asked for its own
``/v1/stats`` (or ``/v1/tap``) on its admin port, concurrently, and the
answers are merged here (`eblocks.telemetry.aggregate`). No collector runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from eblocks.cli.common import admin_access, console, err, fail, refresh, state_or_exit
from eblocks.cli.run_cmds import MESH_OPTION, STATE_OPTION
from eblocks.runtime import StateDir
from eblocks.runtime.state import pid_alive, read_json
from eblocks.telemetry.aggregate import Red, block_rows, edge_rows

if TYPE_CHECKING:  # aiohttp and the admin client: imported by the commands that ask
    from aiohttp import web

    from eblocks.security.admin import AdminAccess
    from eblocks.spec import MeshSpec

__all__ = [
    "admin_rows",
    "counts_nothing",
    "fetch_stats",
    "register",
    "route_warning",
    "running_spec",
]

_TIMEOUT = 3.0  # seconds for one instance's /v1/stats
_DIRECT = "direct"  # `telemetry.inbound.DIRECT` (not imported: it pulls OpenTelemetry in)
_TCP = "tcp"  # `sidecar.tcp.ROUTE`: a TCP sidecar's connections
WINDOW_OPTION = typer.Option("10s", "--window", "-w", help="sliding window: 10s or 60s")


def admin_rows(state: StateDir, block: str | None = None) -> list[dict[str, Any]]:
    """The running instances (of ``block``) with an admin port, from the supervisor's state."""
    rows = (read_json(state.state) or {}).get("instances", [])
    return [
        r
        for r in rows
        if r.get("admin_port")
        and r.get("pid")
        and pid_alive(int(r["pid"]))
        and (block is None or r.get("block") == block)
    ]


def running_spec(state: StateDir) -> MeshSpec | None:
    """The spec the mesh runs (``spec.yaml`` in its state dir), or None when unreadable."""
    from eblocks.errors import SpecError
    from eblocks.spec import load_spec

    try:
        return load_spec(state.spec)
    except SpecError:
        return None


def counts_nothing(state: StateDir, spec: MeshSpec | None) -> str | None:
    """Why the mesh's instances count no request (``telemetry.metrics: false``), or None."""
    if spec is None or spec.telemetry.metrics:
        return None
    return f"mesh {state.mesh!r} runs with telemetry.metrics: false: instances count no requests"


def _note(message: str) -> None:
    err.print(f"[yellow]note:[/] {escape(message)}", soft_wrap=True)


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def route_warning(spec: MeshSpec, route: str) -> str | None:
    """Why no request of the mesh can have ``route``, or None when one can.

    Routes are the spec's pattern names, ``direct`` (a call by name), ``tcp``
    (a TCP sidecar's connections) and an application block's ``METHOD
    /template``; only a plain word is checked (the templates are the app's).
    """
    if " " in route or route in spec.patterns or route == _DIRECT:
        return None
    tcp = any(b.external is not None and b.external.protocol == "tcp" for b in spec.blocks.values())
    if tcp and route == _TCP:
        return None
    patterns = ", ".join(sorted(spec.patterns)) or "none"
    return (
        f"no request of mesh {spec.mesh!r} has route {route!r}: a route is a pattern "
        f"({patterns}), {_DIRECT!r} (a call by name)"
        + (f", {_TCP!r} (a TCP sidecar's)" if tcp else "")
        + " or an application block's 'METHOD /template'; tapping all the same"
    )


async def fetch_stats(
    rows: Sequence[dict[str, Any]], access: AdminAccess
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every instance's ``/v1/stats``, asked concurrently, and which instances did not answer."""
    import aiohttp

    async with access.session(aiohttp.ClientTimeout(total=_TIMEOUT)) as session:

        async def one(row: dict[str, Any]) -> dict[str, Any] | str:
            url = access.row_url(row, "/v1/stats")
            try:
                async with session.get(url) as resp:
                    resp.raise_for_status()
                    data: dict[str, Any] = orjson.loads(await resp.read())
                    return data
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
                return f"{row.get('instance')}: {type(exc).__name__}"

        answers = await asyncio.gather(*(one(r) for r in rows))
    stats = [a for a in answers if isinstance(a, dict)]
    missing = [a for a in answers if isinstance(a, str)]
    return stats, missing


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}ms"


def _rate(red: Red) -> str:
    rate = red.success_rate
    if rate is None:
        return "-"
    style = "green" if rate >= 0.99 else "yellow" if rate >= 0.95 else "red"
    return f"[{style}]{rate * 100:.2f}%[/]"


def stat_tables(stats: Sequence[dict[str, Any]], window: str, block: str | None) -> Group:
    blocks = Table(title=f"blocks — inbound, last {window}")
    for column in ("block", "instances", "success", "rps", "p50", "p95", "p99", "in flight"):
        blocks.add_column(column, justify="left" if column == "block" else "right")
    for row in block_rows(stats, window):
        if block is None or row.block == block:
            red = row.red
            blocks.add_row(
                row.block,
                str(row.instances),
                _rate(red),
                f"{red.rps:.1f}",
                _ms(red.p(50)),
                _ms(red.p(95)),
                _ms(red.p(99)),
                str(row.inflight),
            )
    edges = Table(title=f"edges — as callers see them, last {window}")
    for column in ("from", "to", "success", "rps", "p50", "p99", "retries"):
        edges.add_column(column, justify="left" if column in ("from", "to") else "right")
    for edge in edge_rows(stats, window):
        if block is None or block in (edge.src, edge.dst):
            red = edge.red
            edges.add_row(
                edge.src,
                edge.dst,
                _rate(red),
                f"{red.rps:.1f}",
                _ms(red.p(50)),
                _ms(red.p(99)),
                str(edge.retries),
            )
    return Group(blocks, edges)


def _gather(state: StateDir, block: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    rows = admin_rows(state)
    if not rows:
        fail(f"no running instance in mesh {state.mesh!r} (start it with `eblocks up`)")
    if block is not None and not any(r.get("block") == block for r in rows):
        known = ", ".join(sorted({str(r.get("block")) for r in rows}))
        fail(f"no running instance of block {block!r} (running: {known})")
    return asyncio.run(fetch_stats(rows, admin_access(state)))


def _check_window(window: str) -> str:
    if window not in ("10s", "60s"):
        fail(f"--window must be 10s or 60s, got {window!r}")
    return window


def stat(
    block: str | None = typer.Argument(None, help="only this block (and its edges)"),
    window: str = WINDOW_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the instances' stats as JSON"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Golden metrics per block and per edge, merged from every instance's /v1/stats."""
    window = _check_window(window)
    state = state_or_exit(mesh, state_dir)
    stats, missing = _gather(state, block)
    off = counts_nothing(state, running_spec(state))
    if off is not None:
        _note(f"{off} (the figures below stay empty)")
    if as_json:
        stats = [s for s in stats if block is None or s.get("block") == block]
        typer.echo(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode())
    else:
        console.print(stat_tables(stats, window, block))
    for line in missing:
        err.print(f"[yellow]no answer from {line}[/]")


def top(
    window: str = WINDOW_OPTION,
    interval: float = typer.Option(2.0, min=0.2, help="seconds between refreshes"),
    iterations: int = typer.Option(0, min=0, help="stop after this many refreshes (0: Ctrl-C)"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Live, refreshing golden metrics of every block and edge of the mesh."""
    window = _check_window(window)
    state = state_or_exit(mesh, state_dir)
    off = counts_nothing(state, running_spec(state))
    if off is not None:
        _note(f"{off} (the figures stay empty)")

    def frame() -> Group:
        stats, missing = _gather(state, None)
        head = Table.grid()
        head.add_row(
            f"mesh {state.mesh}: {len(stats)} instances answered"
            + (f", [yellow]{len(missing)} did not[/]" if missing else "")
            + f" — {time.strftime('%H:%M:%S')}"
        )
        return Group(head, stat_tables(stats, window, None))

    refresh(frame, interval, iterations)


def tap(
    block: str = typer.Argument(..., help="block whose instances to tap"),
    route: str | None = typer.Option(None, "--route", "-r", help="only this route (pattern)"),
    direction: str = typer.Option("inbound", help="inbound, outbound or both"),
    limit: int = typer.Option(100, min=1, help="stop after this many requests"),
    seconds: float = typer.Option(60.0, min=0.1, help="stop after this long"),
    as_json: bool = typer.Option(False, "--json", help="print each request as a JSON line"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Stream a block's requests live (each instance's /v1/tap), as they happen."""
    if direction not in ("inbound", "outbound", "both"):
        fail(f"--direction must be inbound, outbound or both, got {direction!r}")
    state = state_or_exit(mesh, state_dir)
    spec = running_spec(state)
    rows = admin_rows(state, block)
    if not rows:
        hint = ""
        if spec is not None and block in spec.patterns and block not in spec.blocks:
            hint = f" ({block!r} is a pattern: tap one of its blocks with --route {block})"
        fail(f"no running instance of block {block!r} in mesh {state.mesh!r}{hint}")
    off = counts_nothing(state, spec)
    if off is not None:
        fail(f"{off}: nothing to tap")
    unknown = route_warning(spec, route) if spec is not None and route else None
    if unknown is not None:
        _warn(unknown)
    query: dict[str, str] = {"limit": str(limit), "seconds": str(seconds)}
    if route:
        query["route"] = route
    if direction != "both":
        query["direction"] = direction
    printed = asyncio.run(_tap(rows, admin_access(state), query, limit, seconds, as_json))
    if not as_json:
        err.print(f"{printed} request(s)")


async def _tap(
    rows: Sequence[dict[str, Any]],
    access: AdminAccess,
    query: dict[str, str],
    limit: int,
    seconds: float,
    raw: bool,
) -> int:
    import aiohttp

    printed = 0
    done = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=seconds + 5, sock_connect=3)
    async with access.session(timeout) as session:

        async def follow(row: dict[str, Any]) -> None:
            nonlocal printed
            url = access.row_url(row, "/v1/tap")
            try:
                async with session.get(url, params=query) as resp:
                    if resp.status != 200:
                        err.print(f"[yellow]{row['instance']}: {await resp.text()}[/]")
                        return
                    async for line in resp.content:
                        if not line.strip() or printed >= limit:
                            continue
                        record = orjson.loads(line)
                        _print(record, raw)
                        printed += "dropped" not in record
                        if printed >= limit:
                            done.set()
                            return
            except (aiohttp.ClientError, TimeoutError) as exc:
                err.print(f"[yellow]{row['instance']}: {type(exc).__name__}[/]")

        tasks = [asyncio.create_task(follow(r)) for r in rows]
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait(
            [*tasks, waiter], timeout=seconds + 5, return_when=asyncio.FIRST_COMPLETED
        )
        if not done.is_set():
            await asyncio.wait(tasks, timeout=seconds + 5)
        for task in [*tasks, waiter]:
            task.cancel()
        await asyncio.gather(*tasks, waiter, return_exceptions=True)
    return printed


def _print(record: dict[str, Any], raw: bool) -> None:
    if raw:
        typer.echo(orjson.dumps(record).decode())
        return
    if "dropped" in record:
        err.print(f"[yellow]… {record['dropped']} request(s) dropped (reader too slow)[/]")
        return
    status = record["status"]
    style = "red" if status >= 500 else "yellow" if status >= 400 else "green"
    error = f" {record['error']}" if record.get("error") else ""
    console.print(
        f"{record['time']} {record['instance']} {record['direction']:<8} "
        f"{record['source']} → {record['destination']} {record['route']} "
        f"[{style}]{status}{error}[/] {record['duration_ms']:.2f}ms "
        f"{record['bytes_in']}B/{record['bytes_out']}B req={record['request_id'] or '-'}"
        + (f" trace={record['trace_id']}" if record.get("trace_id") else ""),
        soft_wrap=True,
    )


def trace(
    trace_id: str | None = typer.Argument(None, help="trace id (32 hex digits); none: list"),
    last: int = typer.Option(10, min=1, help="how many recent traces to list"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """The spans of one trace as a tree (from `telemetry.tracing.exporter: file`)."""
    from eblocks.telemetry.traces import read_spans, render_tree, traces

    wanted_id = None
    if trace_id is not None:
        wanted_id = trace_id.lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{32}", wanted_id):
            fail(f"{trace_id!r} is not a trace id: 32 hex digits (`eblocks trace` lists them)")
    state = state_or_exit(mesh, state_dir)
    found = traces(read_spans(state.path / "logs"))
    if not found:
        fail(
            f"no spans under {state.path / 'logs'} yet: with `telemetry: {{tracing: "
            "{exporter: file}}` each sampled request adds its spans there"
        )
    if trace_id is None:
        table = Table(title="recent traces")
        for column in ("trace id", "root", "spans", "start"):
            table.add_column(column)
        recent = sorted(found.values(), key=lambda spans: min(s.start for s in spans))[-last:]
        for spans in recent:
            first = min(spans, key=lambda s: s.start)
            table.add_row(first.trace_id, first.name, str(len(spans)), first.start.isoformat())
        console.print(table)
        return
    wanted = found.get(wanted_id or "")
    if wanted is None:  # a request id (what `eblocks tap` shows) names its trace too
        wanted = next(
            (
                spans
                for spans in found.values()
                if any(s.attributes.get("eblocks.request_id") == wanted_id for s in spans)
            ),
            None,
        )
    if wanted is None:
        fail(
            f"no trace {trace_id!r} among {len(found)} recorded traces "
            "(not sampled? only `telemetry.tracing.sampling` of new traces are recorded)"
        )
    for line in render_tree(wanted):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def dashboard(
    host: str = typer.Option("127.0.0.1", help="address to serve the page on"),
    port: int = typer.Option(0, min=0, max=65535, help="port (0: any free port)"),
    interval: float = typer.Option(2.0, min=0.2, help="seconds between updates"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Serve a live web page of the mesh: topology, golden metrics per block and edge."""
    from eblocks.dashboard import Dashboard

    state = state_or_exit(mesh, state_dir)
    access = admin_access(state)
    if not admin_rows(state):  # it may be started later: the page shows it then
        _warn(
            f"mesh {state.mesh!r} has no running instance (start it with `eblocks up`); "
            "the page shows its instances once they run"
        )
    off = counts_nothing(state, running_spec(state))
    if off is not None:
        _note(f"{off} (the page's figures stay empty)")

    async def fetch() -> tuple[list[dict[str, Any]], list[str]]:
        access.refresh()  # the supervisor renews the CLI's SVID while the page runs
        return await fetch_stats(admin_rows(state), access)

    from eblocks.telemetry.traces import recent_traces

    logs = state.path / "logs"
    board = Dashboard(state.mesh, fetch, interval=interval, traces=lambda: recent_traces(logs))
    asyncio.run(_serve_dashboard(board.app(), host, port))


async def _serve_dashboard(app: web.Application, host: str, port: int) -> None:
    """Serve the page as a block of its own: probes and /metrics on its admin port, drain."""
    from eblocks.block import Block
    from eblocks.errors import PortInUseError
    from eblocks.spec.models import Defaults, resolve_settings

    settings = resolve_settings("dashboard", None, Defaults(drain=1.0))  # SSE streams never end
    block = Block("dashboard", app=app, instance=f"dashboard-{os.getpid()}", settings=settings)
    try:
        await block.start(host, port)
    except (OSError, PortInUseError) as exc:
        fail(f"cannot serve the dashboard on {host}:{port}: {exc}")
    try:
        print(
            f"dashboard on http://{host}:{block.port}/ (Ctrl-C to stop; "
            f"probes and /metrics on http://{host}:{block.admin_port}/)",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await block.stop()


def register(app: typer.Typer) -> None:
    app.command()(stat)
    app.command()(top)
    app.command()(tap)
    app.command()(trace)
    app.command()(dashboard)
