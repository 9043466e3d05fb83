"""`make demo` / `eblocks docproc demo`: the case study end to end, as a tour.

1. generate the corpus (2,745 documents shaped like the paper's, cached);
2. create the key store (RSA 2048/3072/4096 + Ed25519) once;
3. ``eblocks up examples/docproc/mesh.yaml`` — router/UI, the four filters, fetch,
   the decrypt manager and its workers;
4. ingest every document (semantic → risk → encrypt → store) with a progress bar;
5. read every document back through the decrypt pool and check that each one
   decrypts to exactly its original bytes;
6. print the summary and the UI's address; stop the mesh (or keep it with ``--keep``).
"""

from __future__ import annotations

import asyncio
import secrets
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
from docproc.meshrun import RunningMesh
from eblocks import Message
from eblocks.batch import percentile

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
    docs = ensure_corpus(workdir / "corpus", count, seed, console)
    keys_dir = workdir / "keys"
    console.print(f"[bold]2.[/] key store in {keys_dir} (RSA 2048/3072/4096 + Ed25519)")
    KeyStore(keys_dir).ensure()
    token = secrets.token_urlsafe(12)
    env = {
        "DOCPROC_HOME": str(workdir / "data"),
        "DOCPROC_KEYS": str(keys_dir),
        "DOCPROC_READER_TOKEN": token,
    }
    mesh = RunningMesh(SPEC, state_root or workdir / "state", env)
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
        if result.ui:
            console.print(f"UI: [bold]{result.ui}/[/] (HTTPS with the router's SVID)")
            console.print(f"the mesh's CA bundle (to trust it): {mesh.ca_bundle}")
            console.print(f"reader token (opens high-risk documents in the UI): {token}")
    finally:
        if keep:
            console.print(
                f"the mesh keeps running; stop it with `eblocks down --state-dir {mesh.root}`"
            )
        else:
            console.print("[bold]6.[/] eblocks down")
            mesh.down()
    return result


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
