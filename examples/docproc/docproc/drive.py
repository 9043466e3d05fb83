"""Push documents through a running scenario and keep what each one cost.

`drive` sends every document (or stored document id) to a pattern with
bounded concurrency through `eblocks.batch.submit` (retries, 429 back-off) and
returns one `DocResult` per document: its response time (first send to
reply), the stage times the blocks reported (``x-docproc-timings``) and
whether the bytes that came back are exactly the original ones.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from docproc.handlers import DOC_ID_HEADER, TIMINGS_HEADER
from eblocks import Message
from eblocks.batch import BatchReport, Caller, idempotency_key, submit
from eblocks.message import IDEMPOTENCY_HEADER, NAME_HEADER

__all__ = ["DocResult", "Document", "TimedCaller", "drive", "load_documents"]


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    body: bytes
    doc_id: str | None = None  # set once stored (the read path sends the id)


@dataclass
class DocResult:
    name: str
    ok: bool
    rt: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    verified: bool = False
    doc_id: str | None = None
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def prt(self) -> float:
        """Pattern response time: the sum of the stages' own processing times."""
        return sum(self.timings.values())


class TimedCaller:
    """A `Caller` that remembers, per idempotency key, when its first try began."""

    def __init__(self, inner: Caller) -> None:
        self._inner = inner
        self.first: dict[str, float] = {}

    async def call(self, target: str, msg: Message, *, deadline: float | None = None) -> Message:
        self.first.setdefault(msg.headers.get(IDEMPOTENCY_HEADER, ""), time.perf_counter())
        return await self._inner.call(target, msg, deadline=deadline)


def load_documents(folder: Path, count: int | None = None) -> list[Document]:
    """The ``.txt`` files of ``folder`` in name order (the first ``count`` of them)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".txt")
    if count is not None:
        files = files[:count]
    return [Document(p.name, p.read_bytes()) for p in files]


async def drive(
    client: Caller,
    pattern: str,
    docs: Sequence[Document],
    *,
    read_path: bool = False,
    concurrency: int = 16,
    progress: Callable[[DocResult], None] | None = None,
) -> tuple[list[DocResult], BatchReport]:
    """Send each document's bytes (or, with ``read_path``, its stored id) to ``pattern``."""
    timed = TimedCaller(client)
    results: dict[str, DocResult] = {}

    def key(doc: Document) -> str:
        return f"read-{doc.doc_id}" if read_path else idempotency_key(doc.name, doc.body)

    async def load(doc: Document) -> Message:
        headers = {IDEMPOTENCY_HEADER: key(doc), NAME_HEADER: urllib.parse.quote(doc.name)}
        if read_path:
            return Message(orjson.dumps({"id": doc.doc_id}), headers)
        return Message(doc.body, headers)

    def done(doc: Document, reply: Message | None) -> None:
        result = DocResult(doc.name, ok=reply is not None)
        if reply is not None:
            result.rt = time.perf_counter() - timed.first.get(key(doc), time.perf_counter())
            raw = reply.headers.get(TIMINGS_HEADER)
            if raw is not None:  # the read-back stage answered with the document's bytes
                result.timings = orjson.loads(raw)
                result.verified = reply.body == doc.body
                result.doc_id = reply.headers.get(DOC_ID_HEADER)
            else:  # a pattern that ends at the store answers with the stored summary
                result.reply = orjson.loads(reply.body)
                result.timings = result.reply.get("timings", {})
                result.doc_id = result.reply.get("id")
        results[doc.name] = result
        if progress is not None:
            progress(result)

    report = await submit(
        timed,
        pattern,
        docs,
        load=load,
        name=lambda doc: doc.name,
        concurrency=concurrency,
        on_result=done,
    )
    return [results[d.name] for d in docs], report
