"""Handlers of the hybrid example: plain functions, unaware of the patterns they are in.

``ingest`` = clean -> tokenizers (a manager-worker pool of ``tokenize``) -> count;
count writes ``$HYBRID_OUT/<idempotency key>.json`` (when set) with
write-then-rename, so a retried document rewrites the same file.

``lines`` = chunks (divide: one part per non-empty line) -> stats on each line in
parallel -> merge (combine: the per-line results arrive in line order).
"""

from __future__ import annotations

import collections
import os
import re
import time
import unicodedata
from pathlib import Path
from typing import Any

from eblocks import Context, Message

_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
    ]
)


def clean(msg: Message) -> str:
    text = unicodedata.normalize("NFKC", msg.body.decode("utf-8", errors="replace"))
    return " ".join(text.casefold().split())


def tokenize(msg: Message) -> dict[str, Any]:
    time.sleep(float(os.environ.get("HYBRID_TOKENIZE_MS", "5")) / 1000)  # work per document
    return {"tokens": [w for w in _WORD.findall(msg.text()) if w not in _STOP]}


def count(msg: Message, ctx: Context) -> dict[str, Any]:
    """Plain function (runs in a thread): it writes a file."""
    tokens: list[str] = msg.json()["tokens"]
    counts = collections.Counter(tokens)
    result = {"words": len(tokens), "distinct": len(counts), "top": counts.most_common(5)}
    out = os.environ.get("HYBRID_OUT")
    if out and ctx.idempotency_key:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{ctx.idempotency_key}.{os.getpid()}.tmp"
        tmp.write_bytes(Message.of(result).body)
        tmp.replace(folder / f"{ctx.idempotency_key}.json")
    return result


def chunks(msg: Message) -> list[str]:
    """The divider: one part per non-empty line."""
    return [line for line in msg.text().splitlines() if line.strip()]


def stats(msg: Message) -> dict[str, int]:
    """The worker: one line (a JSON string) in, its word and character counts out."""
    line: str = msg.json()
    return {"words": len(line.split()), "chars": len(line)}


def merge(msg: Message) -> dict[str, Any]:
    """The combiner: the per-line results, in line order."""
    parts: list[dict[str, int]] = msg.json()
    return {"lines": len(parts), "words": [p["words"] for p in parts]}
