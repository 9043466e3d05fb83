"""`eblocks docproc demo` and `eblocks bench docproc`: the tour and the paper's experiment."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from docproc.frames import READ_BATCH

__all__ = ["bench_docproc", "demo"]

console = Console()
err = Console(stderr=True)


def demo(
    count: int = typer.Option(2745, min=1, help="documents in the generated corpus"),
    seed: int = typer.Option(7, help="corpus seed (same seed, same documents)"),
    workdir: Path = typer.Option(
        Path(".docproc-demo"), help="corpus, keys, database and mesh state"
    ),
    keep: bool = typer.Option(False, "--keep", help="leave the mesh running (UI stays up)"),
    batch: int = typer.Option(
        READ_BATCH, min=1, max=256, help="documents per read-back request and decrypt task"
    ),
) -> None:
    """Generate the corpus, run it through the mesh, read it back, print the summary."""
    from docproc.demo import run_demo
    from docproc.meshrun import MeshUpError

    try:
        result = run_demo(
            workdir, count=count, seed=seed, keep=keep, read_batch=batch, console=console
        )
    except MeshUpError as exc:  # e.g. the mesh of a `demo --keep` still runs: one line, no trace
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if not result.ok:
        err.print("[red]some documents failed or did not decrypt to their original bytes[/]")
        raise typer.Exit(1)


def bench_docproc(
    paper: bool = typer.Option(False, "--paper", help="A, B1, B2, B4, C1, C2, C4 (the paper's)"),
    scenarios: str = typer.Option("A,C2", help="variants to run when not --paper"),
    count: int = typer.Option(2745, min=1, help="documents (the first COUNT of the corpus)"),
    corpus_dir: Path | None = typer.Option(
        None, "--corpus", help="folder of .txt documents (default: generate, seed 7)"
    ),
    large: int = typer.Option(
        0, min=0, help="also run A and D (divide & conquer) on this many large documents"
    ),
    concurrency: int = typer.Option(16, min=1, max=1024, help="requests in flight"),
    batch: int = typer.Option(
        READ_BATCH, min=1, max=256, help="B: documents per read request and per decrypt task"
    ),
    out: Path = typer.Option(Path("bench/results"), help="JSON + Markdown + PNG go here"),
    workdir: Path = typer.Option(Path(".docproc-bench"), help="corpus cache and key store"),
) -> None:
    """The paper's throughput experiment, each variant from a clean `up` (docs/docproc.md)."""
    from docproc.demo import ensure_corpus
    from docproc.drive import load_documents
    from docproc.experiment import (
        corpus_summary,
        large_variants,
        paper_variants,
        run_experiment,
    )
    from docproc.report import console_table, write_results

    variants = paper_variants(batch=batch)
    if not paper:
        wanted = [s.strip() for s in scenarios.split(",") if s.strip()]
        known = {v.name: v for v in variants}
        if "D" in wanted or "A-large" in wanted:
            err.print("[red]D and A-large run with --large N (N large documents)[/]")
            raise typer.Exit(2)
        unknown = [w for w in wanted if w not in known]
        if unknown:
            err.print(f"[red]unknown scenarios {unknown}; choose from {sorted(known)}[/]")
            raise typer.Exit(2)
        variants = [known[w] for w in wanted]
    if corpus_dir is not None:
        docs = load_documents(corpus_dir, count)
        if not docs:
            err.print(f"[red]{corpus_dir} holds no .txt files[/]")
            raise typer.Exit(2)
    else:
        docs = ensure_corpus(workdir / f"corpus-{count}", count, 7, console)

    large_docs = []
    if large:
        variants += large_variants()
        large_docs = ensure_corpus(
            workdir / f"corpus-large-{large}", large, 7, console, large_share=1.0
        )

    def progress(name: str, done: int, total: int) -> None:
        if done == total or done % 500 == 0:
            err.print(f"  {name}: {done}/{total}")

    experiment = run_experiment(
        variants,
        docs,
        keys_dir=workdir / "keys",
        corpus=corpus_summary(docs),
        large_docs=large_docs,
        concurrency=concurrency,
        progress=progress,
    )
    experiment.settings["command"] = "eblocks " + shlex.join(sys.argv[1:])
    # Not a terminal (a log, CI): print the table whole, not squeezed into 80 columns.
    console.print(console_table(experiment), width=None if console.is_terminal else 220)
    for path in write_results(experiment, out):
        console.print(f"wrote {path}")
