"""Push documents through a running scenario and keep what each one cost.

`drive` sends every document (or stored document id) to a pattern with
bounded concurrency through `eblocks.batch.submit` (retries, 429 back-off) and
returns one `DocResult` per document: its response time (first send to
reply), the stage times the blocks reported (``x-docproc-timings``) and
whether the bytes that came back are exactly the original ones.
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from docproc import frames
from docproc.handlers import DOC_ID_HEADER, TIMINGS_HEADER
from docproc.store import MAX_IDS
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
    batch: int = 1,
    concurrency: int = 16,
    progress: Callable[[DocResult], None] | None = None,
) -> tuple[list[DocResult], BatchReport]:
    """Send each document's bytes (or, with ``read_path``, its stored id) to ``pattern``.

    On the read path, ``batch`` > 1 sends the ids ``batch`` at a time (one request,
    one fetch query, one decrypt task each); ``concurrency`` counts requests.
    """
    if read_path and batch > 1:
        return await _drive_batches(client, pattern, docs, batch, concurrency, progress)
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


async def _drive_batches(
    client: Caller,
    pattern: str,
    docs: Sequence[Document],
    size: int,
    concurrency: int,
    progress: Callable[[DocResult], None] | None,
) -> tuple[list[DocResult], BatchReport]:
    """The read path in batches: each document's RT is its batch's, its stage times the
    batch's (the document waited for the whole stage), so PRT + CT = RT as per document."""
    if size > MAX_IDS:
        raise ValueError(f"batch of {size} documents: at most {MAX_IDS}")
    timed = TimedCaller(client)
    results: dict[str, DocResult] = {}
    batches = [tuple(docs[i : i + size]) for i in range(0, len(docs), size)]

    def key(chunk: tuple[Document, ...]) -> str:
        ids = "\n".join(str(doc.doc_id) for doc in chunk)
        return "read-batch-" + hashlib.sha256(ids.encode()).hexdigest()[:32]

    async def load(chunk: tuple[Document, ...]) -> Message:
        ids = [doc.doc_id for doc in chunk]
        return Message(orjson.dumps({"ids": ids}), {IDEMPOTENCY_HEADER: key(chunk)})

    def done(chunk: tuple[Document, ...], reply: Message | None) -> None:
        opened: dict[str, bytes] = {}
        timings: dict[str, float] = {}
        rt = 0.0
        if reply is not None:
            rt = time.perf_counter() - timed.first.get(key(chunk), time.perf_counter())
            head, bodies = frames.unpack(reply.body)
            timings = head.get("timings", {})
            opened = {doc["id"]: body for doc, body in zip(head["docs"], bodies, strict=True)}
        for doc in chunk:
            body = opened.get(str(doc.doc_id))
            result = DocResult(doc.name, ok=body is not None, doc_id=doc.doc_id)
            if body is not None:
                result.rt, result.timings = rt, dict(timings)
                result.verified = body == doc.body
            results[doc.name] = result
            if progress is not None:
                progress(result)

    report = await submit(
        timed,
        pattern,
        batches,
        load=load,
        name=lambda chunk: f"{chunk[0].name} (+{len(chunk) - 1})",
        concurrency=concurrency,
        on_result=done,
    )
    return [results[d.name] for d in docs], report
