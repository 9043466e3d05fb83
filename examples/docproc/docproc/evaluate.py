"""Measure the risk and semantic stages against a labelled corpus (``labels.jsonl``).

For each document, the risk stage's findings are compared with the planted
items as multisets of ``(type, normalised value)``: digits and letters only for
phones, cards, IBANs and IDs (``+1 (415) 555-0132`` == ``14155550132``), the exact
text for emails and secrets. A finding that matches nothing planted is a false
positive (``decoys_reported`` counts those that are one of the planted
decoys); a planted item nobody found is a false negative. Precision, recall and
F1 are per type. The risk level (from :func:`docproc.risk.assess` fed with
:func:`docproc.semantic.analyse`) is compared with the label's level, the
detected topic and language with the label's. Times are CPU milliseconds per
document (``time.thread_time``).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docproc import risk, semantic

__all__ = ["Evaluation", "TypeScore", "evaluate", "normalise", "read_labels"]

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")
_LOOSE_TYPES = frozenset({"phone", "card", "iban", "national_id"})
_LABEL_KEYS = ("file", "items", "risk")


def normalise(kind: str, value: str) -> str:
    """The form two values of type ``kind`` are compared in."""
    if kind in _LOOSE_TYPES:
        return _NOT_ALNUM.sub("", value).upper()
    return value.strip()


@dataclass(frozen=True, slots=True)
class TypeScore:
    """True positives, false positives and false negatives of one type."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Scores of the analysis stages on one labelled corpus."""

    documents: int
    types: dict[str, TypeScore]
    risk_accuracy: float
    risk_confusion: dict[str, dict[str, int]]
    topic_accuracy: float
    language_accuracy: float
    decoys_planted: int
    decoys_reported: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    semantic_ms: float = 0.0
    risk_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "types": {kind: score.to_dict() for kind, score in self.types.items()},
            "risk_accuracy": round(self.risk_accuracy, 4),
            "risk_confusion": self.risk_confusion,
            "topic_accuracy": round(self.topic_accuracy, 4),
            "language_accuracy": round(self.language_accuracy, 4),
            "decoys_planted": self.decoys_planted,
            "decoys_reported": self.decoys_reported,
            "errors": self.errors,
            "semantic_ms_per_doc": round(self.semantic_ms, 3),
            "risk_ms_per_doc": round(self.risk_ms, 3),
        }


def read_labels(directory: Path) -> Iterator[dict[str, Any]]:
    """The labels of a generated corpus, one dict per document, with clear errors."""
    path = directory / "labels.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no labels file (generate a corpus with `eblocks docproc corpus`)"
        )
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                label = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
            missing = [
                key for key in _LABEL_KEYS if not isinstance(label, dict) or key not in label
            ]
            if missing:
                raise ValueError(f"{path}:{number}: label lacks {', '.join(missing)}")
            yield label


@dataclass(slots=True)
class _Tally:
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    confusion: dict[str, Counter[str]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    documents: int = 0
    risk_ok: int = 0
    topic_ok: int = 0
    language_ok: int = 0
    decoys: int = 0
    decoys_reported: int = 0
    semantic_s: float = 0.0
    risk_s: float = 0.0


def evaluate(directory: Path, *, limit: int | None = None, max_errors: int = 20) -> Evaluation:
    """Run the semantic and risk stages over the corpus in ``directory`` and score them."""
    tally = _Tally()
    for label in read_labels(directory):
        if limit is not None and tally.documents >= limit:
            break
        text = (directory / label["file"]).read_text(encoding="utf-8")
        _score_document(tally, label, text, max_errors)
    n = tally.documents
    return Evaluation(
        documents=n,
        types={
            kind: TypeScore(tally.tp[kind], tally.fp[kind], tally.fn[kind]) for kind in risk.TYPES
        },
        risk_accuracy=tally.risk_ok / n if n else 0.0,
        risk_confusion={
            expected: {got: tally.confusion.get(expected, Counter())[got] for got in risk.LEVELS}
            for expected in risk.LEVELS
        },
        topic_accuracy=tally.topic_ok / n if n else 0.0,
        language_accuracy=tally.language_ok / n if n else 0.0,
        decoys_planted=tally.decoys,
        decoys_reported=tally.decoys_reported,
        errors=tally.errors,
        semantic_ms=tally.semantic_s * 1000 / n if n else 0.0,
        risk_ms=tally.risk_s * 1000 / n if n else 0.0,
    )


def _score_document(tally: _Tally, label: dict[str, Any], text: str, max_errors: int) -> None:
    started = time.thread_time()  # CPU time: wall time on a shared machine says little
    analysis = semantic.analyse(text)
    middle = time.thread_time()
    findings = risk.detect(text)
    graded = risk.assess_findings(findings, analysis)
    tally.semantic_s += middle - started
    tally.risk_s += time.thread_time() - middle
    tally.documents += 1
    expected = Counter((i["type"], normalise(i["type"], i["value"])) for i in label["items"])
    found = Counter((f.type, normalise(f.type, f.value)) for f in findings)
    decoys = {(d["type"], normalise(d["type"], d["value"])) for d in label.get("decoys", [])}
    tally.decoys += len(label.get("decoys", []))
    for key in expected | found:
        hit = min(expected[key], found[key])
        tally.tp[key[0]] += hit
        tally.fp[key[0]] += found[key] - hit
        tally.fn[key[0]] += expected[key] - hit
        if found[key] > hit and key in decoys:
            tally.decoys_reported += found[key] - hit
        if hit < max(expected[key], found[key]) and len(tally.errors) < max_errors:
            miss = "false_negative" if expected[key] > hit else "false_positive"
            tally.errors.append({"file": label["file"], "type": key[0], "error": miss})
    tally.confusion.setdefault(label["risk"], Counter())[graded["level"]] += 1
    tally.risk_ok += graded["level"] == label["risk"]
    tally.topic_ok += analysis["topic"] == label.get("topic")
    tally.language_ok += analysis["language"] == label.get("language")
