"""A three-stage text pipeline: clean -> tokenize -> count.

The last stage writes its result to ``$TEXTPIPE_OUT/<idempotency key>.json``
(when set) with write-then-rename, so a retried document rewrites the same
file: exactly one effect per document, however often it is delivered.
"""

from __future__ import annotations

import collections
import os
import re
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
    """Normalise Unicode, fold case and collapse whitespace (plain function: runs in a thread)."""
    text = unicodedata.normalize("NFKC", msg.body.decode("utf-8", errors="replace"))
    return " ".join(text.casefold().split())


async def tokenize(msg: Message) -> dict[str, Any]:
    words = [w for w in _WORD.findall(msg.text()) if w not in _STOP]
    return {"tokens": words}


async def count(msg: Message, ctx: Context) -> dict[str, Any]:
    tokens: list[str] = msg.json()["tokens"]
    counts = collections.Counter(tokens)
    result = {"words": len(tokens), "distinct": len(counts), "top": counts.most_common(5)}
    out = os.environ.get("TEXTPIPE_OUT")
    if out and ctx.idempotency_key:
        _write_once(Path(out), ctx.idempotency_key, Message.of(result).body)
    return result


def _write_once(folder: Path, key: str, body: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    tmp.write_bytes(body)
    tmp.replace(folder / f"{key}.json")
