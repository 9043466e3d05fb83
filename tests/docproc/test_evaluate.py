"""Evaluation against the labels, and the `eblocks docproc` analysis commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docproc.corpus import CorpusStats
from docproc.evaluate import evaluate, normalise
from eblocks.cli.app import app

runner = CliRunner()


def test_precision_and_recall_per_type(small_corpus: tuple[Path, CorpusStats]) -> None:
    out, stats = small_corpus
    result = evaluate(out)
    assert result.documents == stats.count
    for kind, score in result.types.items():
        assert score.tp + score.fn == stats.items[kind]
        assert score.precision >= 0.95, (kind, score)
        assert score.recall >= 0.95, (kind, score)
    assert result.decoys_planted == stats.decoys > 0
    assert result.decoys_reported == 0
    assert result.risk_accuracy >= 0.95
    assert result.topic_accuracy >= 0.95
    assert result.language_accuracy >= 0.95
    confusion = result.risk_confusion
    assert sum(sum(row.values()) for row in confusion.values()) == stats.count


def _write_corpus(directory: Path, text: str, items: list[dict[str, str]]) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "doc-00000.txt").write_text(text, encoding="utf-8")
    label = {"file": "doc-00000.txt", "items": items, "risk": "low", "decoys": []}
    (directory / "labels.jsonl").write_text(json.dumps(label) + "\n", encoding="utf-8")


def test_misses_and_extras_are_counted(tmp_path: Path) -> None:
    text = "Write to ana@example.com or call (415) 555-0132. Card 4111 1111 1111 1111."
    items = [
        {"type": "email", "value": "ana@example.com"},  # found: true positive
        {"type": "email", "value": "bob@example.com"},  # not in the text: false negative
        {"type": "phone", "value": "415.555.0132"},  # same digits: true positive
    ]  # the card is not labelled: a false positive
    _write_corpus(tmp_path, text, items)
    result = evaluate(tmp_path)
    assert result.types["email"].to_dict()["tp"] == 1
    assert (result.types["email"].fn, result.types["email"].recall) == (1, 0.5)
    assert result.types["phone"].tp == 1
    assert (result.types["card"].fp, result.types["card"].precision) == (1, 0.0)
    assert result.risk_accuracy == 0.0  # a card makes it high, the label says low
    assert {e["error"] for e in result.errors} == {"false_negative", "false_positive"}
    shown = runner.invoke(app, ["docproc", "evaluate", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "false_positive: card in doc-00000.txt" in shown.output


def test_normalise() -> None:
    assert normalise("phone", "+1 (415) 555-0132") == normalise("phone", "14155550132")
    assert normalise("iban", "gb82 west 1234") == "GB82WEST1234"
    assert normalise("email", " a@b.org ") == "a@b.org"


def test_bad_label_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"labels\.jsonl: no labels file"):
        evaluate(tmp_path)
    (tmp_path / "labels.jsonl").write_text('{"file": "x.txt"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"labels\.jsonl:1: label lacks items, risk"):
        evaluate(tmp_path)


# --- commands ------------------------------------------------------------------------------


def test_corpus_and_evaluate_commands(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    made = runner.invoke(app, ["docproc", "corpus", "-n", "30", "--out", str(out), "--json"])
    assert made.exit_code == 0, made.output
    stats = json.loads(made.output)
    assert stats["count"] == 30
    assert stats["seed"] == 7
    assert len(list(out.glob("doc-*.txt"))) == 30
    table = runner.invoke(app, ["docproc", "corpus", "-n", "5", "--out", str(tmp_path / "t")])
    assert table.exit_code == 0, table.output
    assert "mean size" in table.output
    assert "p95" in table.output
    scored = runner.invoke(app, ["docproc", "evaluate", str(out), "--json"])
    assert scored.exit_code == 0, scored.output
    data = json.loads(scored.output)
    assert data["documents"] == 30
    assert set(data["types"]) == {"email", "phone", "card", "iban", "national_id", "secret"}
    shown = runner.invoke(app, ["docproc", "evaluate", str(out), "--limit", "10"])
    assert shown.exit_code == 0, shown.output
    assert "precision" in shown.output
    assert "10 documents: risk level accuracy" in shown.output


def test_evaluate_without_labels_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["docproc", "evaluate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no labels file" in result.output


def test_analyse_and_idf_commands(tmp_path: Path) -> None:
    doc = tmp_path / "memo.txt"
    doc.write_text(
        "Budget memo. The treasury team approved the budget. Card 4111 1111 1111 1111.\n",
        encoding="utf-8",
    )
    (tmp_path / "other.txt").write_text("The budget and the ledger.", encoding="utf-8")
    shown = runner.invoke(app, ["docproc", "analyse", str(doc), "--top-k", "3"])
    assert shown.exit_code == 0, shown.output
    result = json.loads(shown.output)
    assert result["semantic"]["topic"] == "finance"
    assert len(result["semantic"]["keywords"]) == 3
    assert result["risk"]["level"] == "high"
    assert "4111" not in shown.output
    table = tmp_path / "idf.json"
    fitted = runner.invoke(app, ["docproc", "idf", str(tmp_path), "--out", str(table)])
    assert fitted.exit_code == 0, fitted.output
    assert json.loads(table.read_text())["df"] == {"budget": 2, "the": 2}
    missing = runner.invoke(app, ["docproc", "analyse", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output


def test_the_installed_command(tmp_path: Path) -> None:
    """The real `eblocks` entry point finds the commands through the plugin group."""
    eblocks = Path(sys.executable).with_name("eblocks")
    made = subprocess.run(
        [
            str(eblocks),
            "docproc",
            "corpus",
            "-n",
            "12",
            "--seed",
            "3",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["count"] == 12
    assert evaluate(tmp_path).documents == 12
