"""`make demo` / `eblocks docproc demo`: the case study end to end, as a tour.

1. generate the corpus (2,745 documents shaped like the paper's, cached);
2. create the key store (RSA 2048/3072/4096 + Ed25519) once;
3. ``eblocks up examples/docproc/mesh.yaml`` — router/UI, the four filters, fetch,
   the decrypt manager and its workers;
4. ingest every document (semantic → risk → encrypt → store) with a progress bar;
5. read every document back through the decrypt pool and check that each one
   decrypts to exactly its original bytes;
6. print the summary and stop the mesh; with ``--keep`` leave it running and print
   how to reach the UI (address, reader token, a command that verifies the server).

A mesh already running under the demo's state root (from ``demo --keep``) is
neither used nor stopped: the demo refuses to start and says how to stop it.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from docproc import corpus
from docproc.drive import DocResult, Document, drive, load_documents
from docproc.frames import READ_BATCH
from docproc.keystore import KeyStore
from docproc.meshrun import RunningMesh, shown_path
from eblocks import Message
from eblocks.batch import percentile
from eblocks.security.identity import Identity

__all__ = ["DemoResult", "run_demo"]

SPEC = Path(__file__).resolve().parent.parent / "mesh.yaml"


@dataclass
class DemoResult:
    ingested: list[DocResult]
    read: list[DocResult]
    ingest_seconds: float
    read_seconds: float
    counts: dict[str, object]
    ui: str | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.ingested) and all(r.ok and r.verified for r in self.read)


def ensure_corpus(
    folder: Path, count: int, seed: int, console: Console, *, large_share: float = 0.0
) -> list[Document]:
    """The corpus in ``folder``, generated unless an identical one is there already."""
    stamp = folder / ".generated"
    wanted = f"{count} {seed} {large_share}"
    if not (stamp.exists() and stamp.read_text() == wanted):
        console.print(f"[bold]1.[/] generating {count} documents into {folder} (seed {seed})")
        stats = corpus.generate(folder, count=count, seed=seed, large_share=large_share)
        stamp.write_text(wanted)
        console.print(
            f"   mean {stats.mean_bytes:.0f} B (sd {stats.stdev_bytes:.0f}, "
            f"{stats.min_bytes}-{stats.max_bytes}); {stats.sensitive_docs} with sensitive "
            f"items; risk {_counted(stats.risk)}; topics {_counted(stats.topics)}"
        )
    else:
        console.print(f"[bold]1.[/] corpus: {count} documents in {folder} (cached)")
    return load_documents(folder)


async def _pass(
    mesh: RunningMesh,
    pattern: str,
    docs: Sequence[Document],
    label: str,
    console: Console,
    *,
    read_path: bool = False,
    batch: int = 1,
) -> tuple[list[DocResult], float]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=len(docs), failed=0)
        failed = 0

        def tick(result: DocResult) -> None:
            nonlocal failed
            failed += not result.ok or (read_path and not result.verified)
            progress.update(task, advance=1, failed=failed)

        began = time.perf_counter()
        async with mesh.client() as client:
            results, _ = await drive(
                client,
                pattern,
                docs,
                read_path=read_path,
                batch=batch,
                concurrency=16,
                progress=tick,
            )
        return results, time.perf_counter() - began


async def _counts(mesh: RunningMesh) -> dict[str, object]:
    async with mesh.client() as client:
        reply = await client.call("store", Message.of({"op": "counts"}))
    counts: dict[str, object] = orjson.loads(reply.body)["counts"]
    return counts


def run_demo(
    workdir: Path,
    *,
    count: int = 2745,
    seed: int = 7,
    keep: bool = False,
    read_batch: int = READ_BATCH,
    state_root: Path | None = None,
    console: Console | None = None,
) -> DemoResult:
    console = console or Console()
    workdir = workdir.resolve()  # the blocks run in the spec's folder: relative paths would move
    keys_dir = workdir / "keys"
    token = secrets.token_urlsafe(12)
    env = {
        "DOCPROC_HOME": str(workdir / "data"),
        "DOCPROC_KEYS": str(keys_dir),
        "DOCPROC_READER_TOKEN": token,
    }
    mesh = RunningMesh(SPEC, state_root or workdir / "state", env)
    mesh.refuse_if_running()  # a kept mesh: say so before the corpus and the keys
    docs = ensure_corpus(workdir / "corpus", count, seed, console)
    console.print(f"[bold]2.[/] key store in {keys_dir} (RSA 2048/3072/4096 + Ed25519)")
    KeyStore(keys_dir).ensure()
    console.print(f"[bold]3.[/] eblocks up {SPEC}")
    mesh.up()
    console.print(f"   {len(mesh.instances())} instances ready in {mesh.startup_seconds:.1f} s")
    try:
        console.print("[bold]4.[/] ingest: semantic → risk → encrypt → store")
        ingested, t_in = asyncio.run(_pass(mesh, "ingest", docs, "ingest", console))
        ids = {r.name: r.doc_id for r in ingested if r.ok}
        stored = [Document(d.name, d.body, ids[d.name]) for d in docs if d.name in ids]
        console.print(
            "[bold]5.[/] read back: fetch → decrypt manager → decrypt workers"
            + (f", {read_batch} documents a request" if read_batch > 1 else "")
        )
        read, t_read = asyncio.run(
            _pass(mesh, "readback", stored, "read back", console, read_path=True, batch=read_batch)
        )
        counts = asyncio.run(_counts(mesh))
        result = DemoResult(ingested, read, t_in, t_read, counts, mesh.address("router"))
        console.print(summary(result))
        if keep and result.ui:
            _print_access(console, mesh, result.ui, token)
    finally:
        if keep:
            console.print(f"the mesh keeps running; stop it with `{mesh.down_command}`")
        else:
            console.print("[bold]6.[/] eblocks down")
            mesh.down()
    if not keep and result.ui:
        console.print(
            f"the UI was served at {result.ui}/ during the run and stopped with the mesh; "
            "`eblocks docproc demo --keep` leaves it up",
            markup=False,
            soft_wrap=True,
        )
    return result


VERIFY_COMMAND = (
    "python3 -c 'import ssl,sys,urllib.request as u; "
    "c=ssl.create_default_context(cafile=sys.argv[1]); c.check_hostname=False; "
    "print(u.urlopen(sys.argv[2],context=c).read().decode())'"
)
"""Fetch a URL, checking the server's chain against a CA bundle but not its host name."""


def _print_access(console: Console, mesh: RunningMesh, ui: str, token: str) -> None:
    """How to reach the kept UI: the address, the reader token and a verified request.

    The router's certificate is its SVID, whose only name is a SPIFFE ID (a URI
    SAN), so nothing can match a host name: ``curl --cacert`` fails the host name
    check, and curl has no switch that skips only that check (``-k`` skips the
    chain check as well). Python's ``check_hostname = False`` with the bundle
    checks the chain alone (docs/security.md, "ingress").
    """
    sec = mesh.spec.security
    spiffe_id = Identity(sec.trust_domain, mesh.spec.mesh, "router")
    bundle = shlex.quote(shown_path(mesh.ca_bundle))
    lines = (
        f"UI: {ui}/ (HTTPS with the router's SVID, named {spiffe_id}, not a host name: "
        "a browser warns before it opens the page)",
        f"reader token (opens high-risk documents in the UI): {token}",
        f"the mesh's CA bundle (to trust it): {bundle}; `curl --cacert` cannot use it: the "
        "certificate has no host name to match, and curl cannot skip only the host name "
        "check (-k skips the chain check too). Checking the chain against the bundle:",
        f"  {VERIFY_COMMAND} {bundle} {ui}/v1/counters",
    )
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def summary(result: DemoResult) -> Table:
    table = Table(title="docproc demo", show_header=False)
    ok_in = [r for r in result.ingested if r.ok]
    ok_read = [r for r in result.read if r.ok]
    table.add_row("documents ingested", f"{len(ok_in)} of {len(result.ingested)}")
    table.add_row(
        "read back, bytes identical",
        f"{sum(r.verified for r in ok_read)} of {len(result.read)}",
    )
    table.add_row("ingest throughput", f"{len(ok_in) / result.ingest_seconds:.1f} docs/s")
    table.add_row("read-back throughput", f"{len(ok_read) / result.read_seconds:.1f} docs/s")
    for label, rows in (("ingest", ok_in), ("read back", ok_read)):
        rts = [r.rt * 1000 for r in rows]
        table.add_row(
            f"{label} RT p50 / p95",
            f"{percentile(rts, 50):.1f} / {percentile(rts, 95):.1f} ms",
        )
    levels = Counter(r.reply.get("level") for r in ok_in if r.reply)
    table.add_row("risk levels (this run)", _counted(levels))
    table.add_row("documents in the store", str(result.counts.get("total")))
    for key in ("by_level", "by_topic"):
        value = result.counts.get(key)
        if isinstance(value, dict):
            table.add_row(f"  {key.replace('_', ' ')}", _counted(value))
    return table


def _counted(counts: Mapping[Any, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
