"""The corpus generator: determinism, shape of the sizes, and labels that tell the truth."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from docproc.checksums import iban_valid, luhn_valid, nie_valid, ssn_valid
from docproc.corpus import CorpusStats, generate, generate_document
from docproc.risk import grade

KIB = 1024


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _labels(directory: Path) -> list[dict[str, object]]:
    lines = (directory / "labels.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", 40, seed=11)
    generate(tmp_path / "b", 40, seed=11)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 41  # 40 documents and labels.jsonl
    assert a == b


def test_other_seed_gives_other_documents(tmp_path: Path) -> None:
    generate(tmp_path / "a", 10, seed=11)
    generate(tmp_path / "b", 10, seed=12)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a)


def test_a_document_does_not_depend_on_the_count(tmp_path: Path) -> None:
    generate(tmp_path, 8, seed=5)
    text, label = generate_document(5, 6)
    assert (tmp_path / "doc-00006.txt").read_bytes() == text.encode("utf-8")
    assert _labels(tmp_path)[6] == {"file": "doc-00006.txt", **label}


def test_sizes_look_like_the_papers_dataset(small_corpus: tuple[Path, CorpusStats]) -> None:
    _, stats = small_corpus
    assert stats.count == 200
    assert 3.5 * KIB <= stats.mean_bytes <= 4.5 * KIB
    assert stats.min_bytes < stats.p50_bytes < stats.mean_bytes < stats.p95_bytes < stats.max_bytes
    assert 0.3 * stats.mean_bytes < stats.stdev_bytes < stats.mean_bytes  # a realistic spread
    assert stats.max_bytes <= 17_000
    assert stats.large_docs == 0
    assert 0.3 <= stats.sensitive_docs / stats.count <= 0.5  # documented: 40 %


def test_stats_match_the_files(small_corpus: tuple[Path, CorpusStats]) -> None:
    out, stats = small_corpus
    sizes = [p.stat().st_size for p in out.glob("doc-*.txt")]
    assert len(sizes) == stats.count
    assert sum(sizes) == stats.total_bytes
    assert (min(sizes), max(sizes)) == (stats.min_bytes, stats.max_bytes)
    planted = [item for label in _labels(out) for item in label["items"]]  # type: ignore[attr-defined]
    assert len(planted) == sum(stats.items.values())


def test_topics_and_languages_vary(small_corpus: tuple[Path, CorpusStats]) -> None:
    _, stats = small_corpus
    assert len(stats.topics) == 8
    assert min(stats.topics.values()) >= 10
    assert set(stats.languages) == {"en", "es", "fr", "de"}
    assert stats.languages["en"] > 0.8 * stats.count
    assert all(stats.items[kind] > 0 for kind in stats.items)
    assert all(stats.risk[level] > 0 for level in ("low", "medium", "high"))


def test_labels_point_at_valid_planted_values(small_corpus: tuple[Path, CorpusStats]) -> None:
    out, _ = small_corpus
    for label in _labels(out):
        text = (out / str(label["file"])).read_text(encoding="utf-8")
        assert label["bytes"] == len(text.encode("utf-8"))
        counts: Counter[str] = Counter()
        for item in label["items"]:  # type: ignore[attr-defined]
            assert text[item["start"] : item["end"]] == item["value"]
            assert _valid(item["type"], item["kind"], item["value"]), item
            counts[item["type"]] += 1
        expected = grade(counts, str(label["topic"]))
        assert (label["risk"], label["score"]) == (expected["level"], expected["score"])


def test_decoys_are_invalid_and_present(small_corpus: tuple[Path, CorpusStats]) -> None:
    out, stats = small_corpus
    seen = Counter[str]()
    for label in _labels(out):
        text = (out / str(label["file"])).read_text(encoding="utf-8")
        for decoy in label["decoys"]:  # type: ignore[attr-defined]
            assert decoy["value"] in text
            assert not _valid(decoy["type"], decoy["kind"], decoy["value"]), decoy
            seen[decoy["kind"]] += 1
    assert sum(seen.values()) == stats.decoys
    assert {"luhn_invalid", "bad_checksum", "ssn_invalid", "dni_bad_letter"} <= set(seen)


def _valid(kind: str, sub: str, value: str) -> bool:
    compact = re.sub(r"[ -]", "", value)
    if kind == "card":
        return luhn_valid(compact)
    if kind == "iban":
        return iban_valid(compact)
    if kind == "national_id":
        if sub.startswith("ssn"):
            parts = value.split("-")
            return len(parts) == 3 and ssn_valid(*parts)
        return nie_valid(compact)
    if kind == "phone":
        return 8 <= sum(c.isdigit() for c in value) <= 15
    if kind == "email":
        return re.fullmatch(r"[^@\s]+@[a-z0-9.-]+\.[a-z]{2,}", value) is not None
    if sub in ("placeholder", "redacted", "public_pem"):
        return False
    return len(value) >= 16


def test_large_documents_for_divide_and_conquer(tmp_path: Path) -> None:
    stats = generate(tmp_path, 3, seed=1, large_share=1.0)
    assert stats.large_docs == 3
    assert stats.min_bytes >= 40_000
    assert stats.max_bytes <= 205_000
    assert all(label["large"] for label in _labels(tmp_path))


def test_a_new_corpus_replaces_the_old_one(tmp_path: Path) -> None:
    generate(tmp_path, 6, seed=1)
    (tmp_path / "notes.md").write_text("mine")
    generate(tmp_path, 3, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "doc-00000.txt",
        "doc-00001.txt",
        "doc-00002.txt",
        "labels.jsonl",
        "notes.md",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "count must be at least 1"),
        ({"count": 1, "large_share": 1.5}, "large_share must be between 0 and 1"),
        ({"count": 1, "sensitive_share": -0.1}, "sensitive_share must be between 0 and 1"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_bytes_do_not_depend_on_hash_randomisation() -> None:
    """Another interpreter with another PYTHONHASHSEED writes the same documents."""
    script = (
        "import hashlib, sys\n"
        "from docproc.corpus import generate_document\n"
        "texts = [generate_document(9, i, large_share=0.2)[0] for i in range(25)]\n"
        "sys.stdout.write(hashlib.sha256('\\x00'.join(texts).encode()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert child.returncode == 0, child.stderr
    texts = [generate_document(9, i, large_share=0.2)[0] for i in range(25)]
    assert child.stdout == hashlib.sha256("\x00".join(texts).encode()).hexdigest()
