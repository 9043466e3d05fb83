"""`eblocks docproc corpus|evaluate|analyse|idf`: the analysis commands of the case study."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from docproc import corpus, evaluate, risk, semantic

__all__ = ["register"]

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def corpus_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the corpus into."),
    count: int = typer.Option(2745, "--count", "-n", min=1, help="Number of documents."),
    seed: int = typer.Option(7, "--seed", help="Seed: the same seed gives the same bytes."),
    large_share: float = typer.Option(
        0.0, "--large-share", min=0.0, max=1.0, help="Share of 40-200 KB documents."
    ),
    sensitive_share: float = typer.Option(
        corpus.SENSITIVE_SHARE,
        "--sensitive-share",
        min=0.0,
        max=1.0,
        help="Share of documents with sensitive items.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Generate the labelled corpus (doc-NNNNN.txt + labels.jsonl) and print its statistics."""
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: exists and is not a directory")
    started = time.perf_counter()
    stats = corpus.generate(
        out, count, seed, large_share=large_share, sensitive_share=sensitive_share
    )
    if as_json:
        typer.echo(json.dumps(stats.to_dict(), indent=2))
        return
    _out.print(_stats_table(stats, out))
    _out.print(f"written in {time.perf_counter() - started:.1f} s to {out}")


def _stats_table(stats: corpus.CorpusStats, out: Path) -> Table:
    table = Table(title=f"corpus {out} (seed {stats.seed})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    kib = 1024.0
    table.add_row("documents", f"{stats.count:,}")
    table.add_row("total", f"{stats.total_bytes / kib / kib:.2f} MiB")
    table.add_row("mean size", f"{stats.mean_bytes:,.0f} B ({stats.mean_bytes / kib:.2f} KiB)")
    table.add_row("stdev", f"{stats.stdev_bytes:,.0f} B")
    table.add_row("min / p50 / p95 / max", _sizes(stats))
    table.add_row("with sensitive items", _share(stats.sensitive_docs, stats.count))
    table.add_row("with decoys", _share(stats.decoy_docs, stats.count))
    table.add_row("large (40-200 KB)", _share(stats.large_docs, stats.count))
    table.add_row("items planted", ", ".join(f"{k} {v}" for k, v in stats.items.items()))
    table.add_row("decoys planted", str(stats.decoys))
    table.add_row("topics", ", ".join(f"{k} {v}" for k, v in stats.topics.items()))
    table.add_row("languages", ", ".join(f"{k} {v}" for k, v in stats.languages.items()))
    table.add_row("expected risk", ", ".join(f"{k} {v}" for k, v in stats.risk.items()))
    return table


def _sizes(stats: corpus.CorpusStats) -> str:
    values = (stats.min_bytes, stats.p50_bytes, stats.p95_bytes, stats.max_bytes)
    return " / ".join(f"{v:,.0f}" for v in values) + " B"


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})" if whole else "0"


def evaluate_cmd(
    directory: Path = typer.Argument(..., help="A corpus directory with labels.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N documents."),
) -> None:
    """Precision and recall of the risk stage per type, and risk-level accuracy."""
    try:
        result = evaluate.evaluate(directory, limit=limit)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"risk stage on {directory} ({result.documents:,} documents)")
    for column in ("type", "planted", "found", "TP", "FP", "FN", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for kind, s in result.types.items():
        table.add_row(
            kind,
            str(s.tp + s.fn),
            str(s.tp + s.fp),
            str(s.tp),
            str(s.fp),
            str(s.fn),
            f"{s.precision:.4f}",
            f"{s.recall:.4f}",
            f"{s.f1:.4f}",
        )
    _out.print(table)
    _out.print(_summary(result))
    for miss in result.errors[:10]:
        _out.print(f"  {miss['error']}: {miss['type']} in {miss['file']}")


def _summary(result: evaluate.Evaluation) -> str:
    confusion = "; ".join(
        f"{expected}: " + " ".join(f"{got}={n}" for got, n in row.items())
        for expected, row in result.risk_confusion.items()
    )
    return (
        f"{result.documents} documents: risk level accuracy {result.risk_accuracy:.4f} "
        f"(label -> assessed: {confusion})\n"
        f"topic accuracy {result.topic_accuracy:.4f}, "
        f"language accuracy {result.language_accuracy:.4f}\n"
        f"decoys planted {result.decoys_planted}, reported {result.decoys_reported}\n"
        f"time per document: semantic {result.semantic_ms:.2f} ms, risk {result.risk_ms:.2f} ms"
    )


def analyse_cmd(
    path: Path = typer.Argument(..., help="A UTF-8 text file."),
    top_k: int = typer.Option(10, "--top-k", min=0, help="How many keywords."),
) -> None:
    """Print the semantic analysis and the risk assessment of one document as JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{path}: cannot read as UTF-8 text ({exc})")
    analysis = semantic.analyse(text, top_k=top_k)
    result: dict[str, Any] = {"semantic": analysis, "risk": risk.assess(text, analysis)}
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


def idf_cmd(
    directory: Path = typer.Argument(..., help="A directory of .txt documents."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the IDF table (JSON)."),
    min_df: int = typer.Option(2, "--min-df", min=1, help="Keep words in at least N documents."),
) -> None:
    """Fit the IDF table the keyword extractor uses on a folder of .txt files."""
    files = sorted(directory.glob("*.txt")) if directory.is_dir() else []
    if not files:
        _fail(f"{directory}: no .txt files")
    table = semantic.build_idf((f.read_text(encoding="utf-8") for f in files), min_df=min_df)
    out.write_text(table.to_json() + "\n", encoding="utf-8")
    _out.print(f"{len(table.df):,} words from {table.documents:,} documents -> {out}")


def register(group: typer.Typer) -> None:
    """Add the analysis commands to the ``docproc`` group."""
    group.command("corpus")(corpus_cmd)
    group.command("evaluate")(evaluate_cmd)
    group.command("analyse")(analyse_cmd)
    group.command("idf")(idf_cmd)
