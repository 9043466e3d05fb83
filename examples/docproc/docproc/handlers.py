"""The blocks of the case study: each an ordinary handler the scenario specs name.

A document travels between stages as one JSON *work item*::

    {"key": idempotency key, "name": file name, "size": bytes, "sha256": hex,
     "body": base64 of the original bytes (until encrypt replaces it),
     "override": {"level": ...}          # optional, set by the router
     "semantic": {...}, "risk": {...}, "envelope": {...},
     "timings": {"semantic": seconds, "risk": ..., ...}}

Each stage adds its result and its own processing time (``timings``), so the
client can split a response time into the pattern's processing time (the sum
of the stages) and the coupling time (the rest: network, queues, the mesh).
The last stage, ``decrypt``, reads the stored document back, opens its
envelope, checks the SHA-256 of the plaintext against the one recorded at
ingest and answers with the original bytes; the work item's summary travels in
``x-docproc-*`` headers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import orjson

from docproc import envelope, frames, risk, semantic
from docproc.config import settings
from docproc.keystore import LEVELS, KeyStore
from docproc.store import MAX_IDS, Record, Store, StoredRecord, open_store
from eblocks import BadRequestError, Context, Message
from eblocks.message import NAME_HEADER

__all__ = [
    "DOC_ID_HEADER",
    "LEVEL_HEADER",
    "OVERRIDE_HEADER",
    "TIMINGS_HEADER",
    "IntegrityError",
    "decrypt",
    "encrypt",
    "fetch",
    "merge",
    "merge_semantic",
    "risk_stage",
    "semantic_part",
    "semantic_stage",
    "split",
    "split_paragraphs",
    "store",
]

OVERRIDE_HEADER = "x-docproc-risk"  # the router's risk override: low|medium|high
DOC_ID_HEADER = "x-docproc-id"
LEVEL_HEADER = "x-docproc-level"
TIMINGS_HEADER = "x-docproc-timings"


class IntegrityError(Exception):
    """A stored document did not decrypt to the bytes recorded at ingest (a 500, logged)."""


_keys: KeyStore | None = None
_pool: ThreadPoolExecutor | None = None


def _decrypt_pool() -> ThreadPoolExecutor:
    """Where envelopes are opened: ``$DOCPROC_DECRYPT_THREADS`` threads (default 1).

    The RSA private operation releases the GIL, so threads would let one
    instance use every core; with one, a decrypt worker is one CPU's worth of
    work and the pool's size is its parallelism, as the paper's workers were.
    """
    global _pool
    if _pool is None:
        threads = int(os.environ.get("DOCPROC_DECRYPT_THREADS", "1"))
        _pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="decrypt")
    return _pool


_store: Store | None = None
_store_lock = asyncio.Lock()


def keystore() -> KeyStore:
    """This process's key store (opened once)."""
    global _keys
    if _keys is None:
        _keys = KeyStore(settings().keys)
    return _keys


async def open_docstore() -> Store:
    """This process's document store (opened once, on first use)."""
    global _store
    async with _store_lock:
        if _store is None:
            conf = settings()
            conf.home.mkdir(parents=True, exist_ok=True)
            _store = await open_store(conf.database_url, default_path=conf.sqlite_path)
    return _store


def _item(msg: Message) -> dict[str, Any]:
    try:
        item = orjson.loads(msg.body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"expected a docproc work item (JSON): {exc}") from None
    if not isinstance(item, dict):
        raise BadRequestError("expected a docproc work item (a JSON object)")
    return item


def _need(item: dict[str, Any], field: str, stage: str) -> Any:
    if field not in item:
        raise BadRequestError(
            f"{stage}: the work item has no {field!r} (is the stage order right?)"
        )
    return item[field]


def _timed(item: dict[str, Any], stage: str, began: float) -> dict[str, Any]:
    item.setdefault("timings", {})[stage] = time.perf_counter() - began
    return item


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def semantic_stage(msg: Message, ctx: Context) -> dict[str, Any]:
    """Filter 1: keywords, language, topic and reading statistics of a raw document."""
    began = time.perf_counter()
    body = msg.body
    name = urllib.parse.unquote(msg.headers.get(NAME_HEADER, "")) or ctx.request_id
    item: dict[str, Any] = {
        "key": ctx.idempotency_key or hashlib.sha256(body).hexdigest()[:32],
        "name": name,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "body": base64.b64encode(body).decode(),
        "semantic": semantic.analyse(_text(body)),
    }
    override = msg.headers.get(OVERRIDE_HEADER)
    if override:
        if override not in LEVELS:
            raise BadRequestError(f"{OVERRIDE_HEADER} must be one of {LEVELS}, got {override!r}")
        item["override"] = {"level": override}
    return _timed(item, "semantic", began)


def risk_stage(msg: Message) -> dict[str, Any]:
    """Filter 2: sensitive items found and graded low / medium / high."""
    began = time.perf_counter()
    item = _item(msg)
    body = base64.b64decode(_need(item, "body", "risk"))
    graded = risk.assess(_text(body), item.get("semantic"))
    forced = (item.get("override") or {}).get("level")
    if forced in LEVELS and LEVELS.index(forced) > LEVELS.index(graded["level"]):
        graded = {**graded, "level": forced, "overridden": True}
    item["risk"] = graded
    return _timed(item, "risk", began)


def encrypt(msg: Message) -> dict[str, Any]:
    """Filter 3: a digital envelope whose strength follows the risk level."""
    began = time.perf_counter()
    item = _item(msg)
    body = base64.b64decode(_need(item, "body", "encrypt"))
    level = _need(item, "risk", "encrypt")["level"]
    sealed = envelope.seal(body, level, keystore(), aad=item["key"].encode())
    del item["body"]  # from here on only the envelope travels
    item["envelope"] = sealed.to_dict()
    return _timed(item, "encrypt", began)


async def store(msg: Message) -> dict[str, Any]:
    """Filter 4: metadata + ciphertext, written once per idempotency key.

    Also answers queries from the router: ``{"op": "search", ...}``,
    ``{"op": "get", "id": ...}`` and ``{"op": "counts"}``.
    """
    began = time.perf_counter()
    item = _item(msg)
    docs = await open_docstore()
    op = item.get("op", "put")
    if op == "search":
        rows = await docs.search(
            keyword=item.get("keyword"),
            level=item.get("level"),
            topic=item.get("topic"),
            limit=int(item.get("limit", 50)),
            offset=int(item.get("offset", 0)),
        )
        return {"documents": [_summary(r) for r in rows]}
    if op == "get":
        found = await docs.get(str(_need(item, "id", "store")))
        return {"document": _summary(found) if found else None}
    if op == "counts":
        return {"counts": await docs.counts()}
    if op != "put":
        raise BadRequestError(f"store: unknown op {op!r} (put, get, search, counts)")
    sem, graded = _need(item, "semantic", "store"), _need(item, "risk", "store")
    record = Record(
        idempotency_key=item["key"],
        name=item["name"],
        size=item["size"],
        sha256=item["sha256"],
        level=graded["level"],
        topic=sem.get("topic", ""),
        keywords=[k["term"] for k in sem.get("keywords", [])],
        semantic=sem,
        risk=graded,
        envelope=_need(item, "envelope", "store"),
    )
    doc_id, created = await docs.put(record)
    out = {
        "id": doc_id,
        "created": created,
        "key": item["key"],
        "name": item["name"],
        "level": graded["level"],
        "topic": record.topic,
        "timings": item.get("timings", {}),
    }
    return _timed(out, "store", began)


def _summary(stored: StoredRecord) -> dict[str, Any]:
    """A stored document without its envelope (what lists and searches show)."""
    record = stored.record
    return {
        "id": stored.doc_id,
        "name": record.name,
        "size": record.size,
        "level": record.level,
        "topic": record.topic,
        "keywords": list(record.keywords),
        "risk": record.risk,
        "created_at": record.created_at.isoformat(),
    }


async def fetch(msg: Message) -> dict[str, Any]:
    """Read path, filter 1: the stored envelope of ``{"id": ...}`` (scenario B).

    ``{"ids": [...]}`` reads up to `MAX_IDS` documents in one query and answers
    ``{"docs": [...], "timings": {"fetch": seconds}}``: a *batch*, which the
    decrypt workers open as one task (docs/docproc.md, "Task granularity").
    """
    began = time.perf_counter()
    item = _item(msg)
    docs = await open_docstore()
    if "ids" in item:
        ids = _ids(item["ids"])
        found = await docs.get_many(ids)
        if len(found) != len(ids):
            known = {stored.doc_id for stored in found}
            missing = [doc_id for doc_id in ids if doc_id not in known]
            raise BadRequestError(
                f"fetch: no document {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                detail={"missing": missing[:20]},
            )
        batch = {"docs": [_fetched(stored) for stored in found], "timings": {}}
        return _timed(batch, "fetch", began)
    doc_id = str(_need(item, "id", "fetch"))
    one = await docs.get(doc_id)
    if one is None:
        raise BadRequestError(f"fetch: no document {doc_id!r}")
    out = _fetched(one)
    out["timings"] = item.get("timings", {})
    return _timed(out, "fetch", began)


def _ids(value: object) -> list[str]:
    """A batch's ids: a non-empty list of strings, at most `MAX_IDS`, each once."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequestError("fetch: 'ids' must be a non-empty list of document ids (strings)")
    if len(value) > MAX_IDS:
        raise BadRequestError(f"fetch: {len(value)} ids in one batch; at most {MAX_IDS}")
    if len(set(value)) != len(value):
        raise BadRequestError("fetch: 'ids' names a document more than once")
    return value


def _fetched(stored: StoredRecord) -> dict[str, Any]:
    record = stored.record
    return {
        "id": stored.doc_id,
        "key": record.idempotency_key,
        "sha256": record.sha256,
        "level": record.level,
        "envelope": dict(record.envelope),
    }


async def decrypt(msg: Message) -> Message:
    """The expensive stage: unwrap (RSA private key), decrypt, verify; the original bytes.

    Takes the store's reply (``{"id": ...}``), reading the envelope itself, or a
    fetched document that already carries its envelope; answers with the bytes.
    A fetched batch (``{"docs": [...]}``) is opened as one task and answered as
    one frame (`docproc.frames`): each document's id and level, then its bytes.
    """
    began = time.perf_counter()
    item = _item(msg)
    if "docs" in item:
        return await _decrypt_batch(item, began)
    doc_id = str(_need(item, "id", "decrypt"))
    if "envelope" not in item:
        found = await (await open_docstore()).get(doc_id)
        if found is None:
            raise BadRequestError(f"decrypt: no document {doc_id!r}")
        item.update(_fetched(found))
    sealed = _sealed(item)
    plain = await asyncio.get_running_loop().run_in_executor(
        _decrypt_pool(), _open_checked, [sealed], keystore()
    )
    timings = _timed(item, "decrypt", began)["timings"]
    headers = {
        DOC_ID_HEADER: doc_id,
        LEVEL_HEADER: sealed.level,
        TIMINGS_HEADER: orjson.dumps(timings).decode(),
        "content-type": "application/octet-stream",
    }
    return Message(plain[0], headers)


class _Sealed(NamedTuple):
    """What one document needs to be opened and answered."""

    doc_id: str
    level: str
    sealed: envelope.Envelope
    aad: bytes
    sha256: str


def _sealed(doc: dict[str, Any]) -> _Sealed:
    doc_id = str(_need(doc, "id", "decrypt"))
    key, sha256, level = (_need(doc, name, "decrypt") for name in ("key", "sha256", "level"))
    if not all(isinstance(value, str) for value in (key, sha256, level)):
        raise BadRequestError(
            f"decrypt: document {doc_id!r}: 'key', 'sha256' and 'level' must be strings"
        )
    sealed = envelope.Envelope.from_dict(_need(doc, "envelope", "decrypt"))
    return _Sealed(doc_id, level, sealed, key.encode(), sha256)


def _open_checked(docs: list[_Sealed], keys: KeyStore) -> list[bytes]:
    """Open each envelope and check its plaintext's SHA-256 (in the decrypt thread)."""
    out = []
    for doc in docs:
        plain = envelope.open_envelope(doc.sealed, keys, aad=doc.aad)
        if hashlib.sha256(plain).hexdigest() != doc.sha256:
            raise IntegrityError(
                f"decrypt: document {doc.doc_id} does not match its recorded SHA-256"
            )
        out.append(plain)
    return out


async def _decrypt_batch(item: dict[str, Any], began: float) -> Message:
    docs = item["docs"]
    if not isinstance(docs, list) or not docs or not all(isinstance(d, dict) for d in docs):
        raise BadRequestError("decrypt: 'docs' must be a non-empty list of fetched documents")
    if len(docs) > MAX_IDS:
        raise BadRequestError(f"decrypt: {len(docs)} documents in one batch; at most {MAX_IDS}")
    sealed = [_sealed(doc) for doc in docs]
    plains = await asyncio.get_running_loop().run_in_executor(
        _decrypt_pool(), _open_checked, sealed, keystore()
    )
    timings = _timed(item, "decrypt", began)["timings"]
    heads = [{"id": doc.doc_id, "level": doc.level} for doc in sealed]
    return Message(
        frames.pack(heads, plains, timings=timings), {"content-type": frames.CONTENT_TYPE}
    )


# -- scenario D: divide & conquer over large documents ------------------------------------

CHUNK_BYTES = 16 * 1024
"""Target size of one part: paragraphs are grouped until a part reaches it."""


def split_paragraphs(body: bytes, target: int = CHUNK_BYTES) -> list[bytes]:
    """Cut ``body`` at paragraph breaks into parts of about ``target`` bytes.

    The parts concatenate to exactly ``body`` (separators stay with the part
    before them), so the combiner can rebuild the original bytes.
    """
    parts: list[bytes] = []
    start = 0
    while start < len(body):
        cut = body.find(b"\n\n", start + target)
        end = len(body) if cut < 0 else cut + 2
        parts.append(body[start:end])
        start = end
    return parts or [b""]


def split(msg: Message, ctx: Context) -> list[dict[str, Any]]:
    """Divider: one large document into paragraph parts, each a work item of its own."""
    began = time.perf_counter()
    body = msg.body
    meta = {
        "key": ctx.idempotency_key or hashlib.sha256(body).hexdigest()[:32],
        "name": urllib.parse.unquote(msg.headers.get(NAME_HEADER, "")) or ctx.request_id,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    override = msg.headers.get(OVERRIDE_HEADER)
    if override in LEVELS:
        meta["override"] = {"level": override}
    chunks = split_paragraphs(body)
    elapsed = time.perf_counter() - began
    return [
        {
            **meta,
            "index": i,
            "count": len(chunks),
            "chunk": base64.b64encode(c).decode(),
            "timings": {"split": elapsed} if i == 0 else {},
        }
        for i, c in enumerate(chunks)
    ]


def semantic_part(msg: Message) -> dict[str, Any]:
    """Worker: the semantic analysis of one part."""
    began = time.perf_counter()
    part = _item(msg)
    chunk = base64.b64decode(_need(part, "chunk", "semantic-part"))
    part["semantic"] = semantic.analyse(_text(chunk))
    timings = part.setdefault("timings", {})
    timings["semantic"] = time.perf_counter() - began
    return part


def merge(msg: Message) -> dict[str, Any]:
    """Combiner: the parts, in order, back into one work item with one semantic result."""
    began = time.perf_counter()
    try:
        parts = orjson.loads(msg.body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"merge: expected the parts as a JSON array: {exc}") from None
    if not isinstance(parts, list) or not parts:
        raise BadRequestError("merge: expected a non-empty JSON array of analysed parts")
    parts.sort(key=lambda p: p["index"])
    body = b"".join(base64.b64decode(p["chunk"]) for p in parts)
    first = parts[0]
    if hashlib.sha256(body).hexdigest() != first["sha256"]:
        raise IntegrityError(f"merge: the parts of {first['name']} do not rebuild the document")
    item = {k: first[k] for k in ("key", "name", "size", "sha256", "override") if k in first}
    item["body"] = base64.b64encode(body).decode()
    # A part's keywords skip its own sensitive items, not those in other parts.
    blocked = semantic.sensitive_parts(_text(body))
    item["semantic"] = merge_semantic([p["semantic"] for p in parts], blocked=blocked)
    timings: dict[str, float] = {}
    for p in parts:  # the work of every part counts, wherever it ran
        for stage, seconds in p.get("timings", {}).items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    item["timings"] = timings
    return _timed(item, "merge", began)


def merge_semantic(
    results: list[dict[str, Any]], top_k: int = 10, *, blocked: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """One document's semantic result from its parts' (weighted by each part's words).

    Keyword scores (relative, best 1.0) are summed per term weighted by the
    part's share of the words, then made relative again; terms with a part in
    ``blocked`` (`semantic.sensitive_parts` of the whole document) are left out.
    Topic shares are averaged the same way; language is the one most words were written in;
    counts add up and the Flesch score is the word-weighted mean. An
    approximation of analysing the whole text, documented in docs/docproc.md.
    """
    words = [max(1, r["stats"]["words"]) for r in results]
    total = sum(words)
    terms: dict[str, float] = {}
    topics: dict[str, float] = {}
    languages: dict[str, int] = {}
    for r, w in zip(results, words, strict=True):
        for kw in r["keywords"]:
            terms[kw["term"]] = terms.get(kw["term"], 0.0) + kw["score"] * w / total
        for topic, share in r.get("topic_scores", {}).items():
            topics[topic] = topics.get(topic, 0.0) + share * w / total
        languages[r["language"]] = languages.get(r["language"], 0) + w
    sensitive = semantic.sensitive_words(terms, blocked)
    kept = [(term, score) for term, score in terms.items() if term not in sensitive]
    ranked = sorted(kept, key=lambda kv: (-kv[1], kv[0]))[:top_k]
    best = ranked[0][1] if ranked else 1.0
    sentences = sum(r["stats"]["sentences"] for r in results)
    n_words = sum(r["stats"]["words"] for r in results)
    flesch = sum(r["stats"]["flesch_reading_ease"] * w for r, w in zip(results, words, strict=True))
    return {
        "keywords": [{"term": t, "score": round(s / best, 4)} for t, s in ranked],
        "language": max(languages, key=lambda k: languages[k]),
        "topic": max(topics, key=lambda k: topics[k]) if topics else "general",
        "topic_scores": {k: round(v, 4) for k, v in sorted(topics.items())},
        "stats": {
            "chars": sum(r["stats"]["chars"] for r in results),
            "words": n_words,
            "sentences": sentences,
            "avg_sentence_words": round(n_words / sentences, 2) if sentences else 0.0,
            "flesch_reading_ease": round(flesch / total, 2),
        },
    }
