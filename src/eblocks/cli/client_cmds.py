"""`eblocks call` and `eblocks submit`: talk to a running mesh as a client."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from eblocks.cli.common import console, err, fail, state_or_exit
from eblocks.cli.run_cmds import MESH_OPTION, STATE_OPTION
from eblocks.errors import (
    DiscoveryError,
    MeshError,
    PolicyBundleError,
    SecurityError,
    SpecError,
    UpstreamError,
)
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.runtime.state import StateDir, running

if TYPE_CHECKING:  # the mesh's client is imported by the commands that call (CLI start-up)
    from eblocks._types import Resolver
    from eblocks.batch import BatchReport
    from eblocks.block import MeshClient
    from eblocks.policies import LivePolicies
    from eblocks.spec import MeshSpec

__all__ = ["register"]


def _connect(mesh: str | None, state_dir: Path | None) -> tuple[MeshSpec, StateDir, LivePolicies]:
    """The running mesh's spec and state dir, and the policies in force in it now."""
    from eblocks.spec import load_spec

    state = state_or_exit(mesh, state_dir)
    try:
        spec = load_spec(state.spec)
    except SpecError as exc:
        fail(str(exc))
    if not running(state):
        # fail now rather than retrying every document against a mesh that is gone
        fail(f"mesh {state.mesh!r} is not running; start it with `eblocks up`")
    return spec, state, _policies(spec, state)


def _policies(spec: MeshSpec, state: StateDir) -> LivePolicies:
    """The last bundle `eblocks apply` left in the state dir, verified as instances do.

    Without one, the spec's policies (version 0). Routes and splits are the
    caller's to enforce: calling with the spec's would ignore every apply.
    """
    from eblocks.policies.keys import bundle_file
    from eblocks.policies.sync import applied_policies

    try:
        return applied_policies(spec, state.path)
    except (PolicyBundleError, SecurityError, OSError) as exc:
        fail(  # `fail` prints the message as written (no markup)
            f"the policies applied to mesh {state.mesh!r} ({bundle_file(state.path)}) "
            f"are not usable: {exc}"
        )


@contextlib.asynccontextmanager
async def _resolver(spec: MeshSpec, state: StateDir) -> AsyncIterator[Resolver]:
    """The supervisor's endpoint file, or in gossip mode a member's view (asked over TCP)."""
    from eblocks.discovery import SupervisorResolver
    from eblocks.discovery.client_view import mesh_view

    if spec.discovery.mode != "gossip":
        yield SupervisorResolver(state.path)
        return
    async with mesh_view(spec.discovery, state.path) as view:
        yield view


def _client(
    spec: MeshSpec, state: StateDir, policies: LivePolicies, resolver: Resolver
) -> MeshClient:
    """A client of the running mesh, with the CLI's SVID when mTLS is on."""
    from eblocks.block import MeshClient
    from eblocks.security import Auth

    try:
        auth = Auth.for_cli(spec, state.path)
    except SecurityError as exc:
        fail(f"cannot load the CLI's identity: {exc}")
    return MeshClient(spec, resolver, source="cli", auth=auth, policies=policies)


def _read_data(data: str) -> bytes:
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        path = Path(data[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror}")
    return data.encode()


def call(
    target: str = typer.Argument(..., help="block or pattern to call"),
    data: str = typer.Option("", "--data", "-d", help="body: text, @file, or - for stdin"),
    header: list[str] = typer.Option([], "--header", "-H", help="extra header 'name: value'"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Send one message to a block or pattern and print the reply."""
    spec, state, policies = _connect(mesh, state_dir)
    headers = {}
    for item in header:
        name, sep, value = item.partition(":")
        if not sep:
            fail(f"--header {item!r}: expected 'name: value'")
        headers[name.strip().lower()] = value.strip()
    # one logical request: its tries (and every hop after) share a key, so the mesh may
    # retry it (only keyed requests are retried) and a handler can tell a retry apart
    headers.setdefault(IDEMPOTENCY_HEADER, uuid.uuid4().hex)
    msg = Message(_read_data(data), headers)

    async def run() -> Message:
        async with (
            _resolver(spec, state) as resolver,
            _client(spec, state, policies, resolver) as client,
        ):
            return await client.call(target, msg)

    try:
        reply = asyncio.run(run())
    except DiscoveryError as exc:
        fail(f"cannot find the mesh's members: {exc}")
    except MeshError as exc:
        reason = exc.upstream_reason if isinstance(exc, UpstreamError) else exc.reason
        fail(f"{reason} from {exc.origin or target}: {exc.message}")
    sys.stdout.buffer.write(reply.body)
    if reply.body and not reply.body.endswith(b"\n") and sys.stdout.isatty():
        sys.stdout.write("\n")


def submit(
    target: str = typer.Argument(..., help="pattern (or block) to send each document to"),
    directory: Path = typer.Argument(..., help="folder of documents (every regular file)"),
    concurrency: int = typer.Option(8, "--concurrency", "-c", min=1, max=1024),
    out: Path | None = typer.Option(None, "--out", "-o", help="write each reply to OUT/<name>"),
    mesh: str | None = MESH_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Stream every file in DIRECTORY through TARGET, with progress and a summary."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from eblocks.batch import submit_files

    if not directory.is_dir():
        fail(f"{directory} is not a directory")
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        fail(f"{directory} holds no files")
    spec, state, policies = _connect(mesh, state_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(f"submit → {target}", total=len(files), failed=0)
        failed = 0

        def on_result(path: Path, reply: Message | None) -> None:
            nonlocal failed
            if reply is None:
                failed += 1
            elif out is not None:
                (out / path.relative_to(directory)).parent.mkdir(parents=True, exist_ok=True)
                (out / path.relative_to(directory)).write_bytes(reply.body)
            progress.update(task, advance=1, failed=failed)

        async def run() -> BatchReport:
            async with (
                _resolver(spec, state) as resolver,
                _client(spec, state, policies, resolver) as client,
            ):
                return await submit_files(
                    client, target, files, concurrency=concurrency, on_result=on_result
                )

        try:
            report = asyncio.run(run())
        except DiscoveryError as exc:
            fail(f"cannot find the mesh's members: {exc}")
    _print_report(report)
    if report.failures:
        raise typer.Exit(1)


def _print_report(report: BatchReport) -> None:
    from rich.table import Table

    from eblocks.batch import percentile

    ms = [v * 1000 for v in report.latencies]
    summary = Table(title="submit summary", show_header=False)
    summary.add_row("documents ok", str(report.ok))
    summary.add_row("documents failed", str(len(report.failures)))
    summary.add_row("elapsed", f"{report.elapsed:.2f} s")
    summary.add_row("throughput", f"{report.rate:.1f} docs/s")
    for q in (50, 95, 99):  # of the documents that went through
        summary.add_row(f"latency p{q}", f"{percentile(ms, q):.1f} ms" if ms else "- (none ok)")
    console.print(summary)
    if report.failures:
        failures = Table(title="failed documents")
        for column in ("document", "reason", "origin", "message"):
            failures.add_column(column)
        for f in report.failures:
            failures.add_row(f.name, f.reason, f.origin, f.message)
        console.print(failures)


def register(app: typer.Typer) -> None:
    app.command()(call)
    app.command()(submit)
