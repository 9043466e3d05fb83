"""The router block: the case study's ingress and its web UI (an aiohttp app block).

===========================================================  ======================================
route (and the query parameters it takes)                    what it does
===========================================================  ======================================
``GET /``                                                    the UI: upload, search, open, counters
``POST /v1/documents?pattern=&risk=&name=``                  one document (the body)
``POST /v1/batch?pattern=&risk=``                            every file of a multipart form
``GET /v1/documents?keyword=&level=&topic=&limit=&offset=``  search the store
``GET /v1/documents/{id}``                                   metadata; the text if allowed
``GET /v1/counters``                                         processed, failed, in flight, rate
===========================================================  ======================================

The pattern defaults to ``$DOCPROC_PATTERN`` (else ``process``); ``risk`` is an
override the risk stage honours upwards only (a document is never graded lower
than its content). A search filters by risk with ``level``; ``limit`` (at most
500) and ``offset`` page through the results. A query parameter a route does not
take is a 400 that names it and the ones the route accepts (not silently ignored:
``?risk=high`` on a search would otherwise list every level). High-risk documents
open only with ``Authorization: Bearer $DOCPROC_READER_TOKEN``; the others open
for anyone who can reach the router.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.resources
import os
import time
import urllib.parse
from collections import deque
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from docproc.config import settings
from docproc.handlers import DOC_ID_HEADER, LEVEL_HEADER, OVERRIDE_HEADER, TIMINGS_HEADER
from eblocks import MeshError, Message, mesh_client
from eblocks.batch import idempotency_key
from eblocks.message import IDEMPOTENCY_HEADER, NAME_HEADER
from eblocks.respond import error_response

__all__ = ["app"]

MAX_DOCUMENT = 64 * 1024 * 1024
LEVELS = ("low", "medium", "high")
UPLOAD_PARAMETERS = ("pattern", "risk", "name")
BATCH_PARAMETERS = ("pattern", "risk")
SEARCH_PARAMETERS = ("keyword", "level", "topic", "limit", "offset")
BATCH_PARALLEL = 8
RATE_WINDOW = 10.0

_COUNTERS = web.AppKey("docproc.counters", dict)
_DONE = web.AppKey("docproc.done", deque)


def app() -> web.Application:
    """The router's application (the spec names this factory)."""
    application = web.Application(client_max_size=MAX_DOCUMENT)
    application[_COUNTERS] = {"processed": 0, "failed": 0, "inflight": 0}
    application[_DONE] = deque(maxlen=100_000)
    application.router.add_get("/", _index)
    application.router.add_post("/v1/documents", _upload)
    application.router.add_post("/v1/batch", _batch)
    application.router.add_get("/v1/documents", _search)
    application.router.add_get("/v1/documents/{id}", _open)
    application.router.add_get("/v1/counters", _counters)
    return application


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _index(_: web.Request) -> web.Response:
    page = importlib.resources.files("docproc").joinpath("ui/index.html").read_bytes()
    return web.Response(body=page, content_type="text/html", charset="utf-8")


def _bad_request(message: str, **detail: Any) -> web.HTTPBadRequest:
    body = {"error": "bad_request", "message": message, **detail}
    return web.HTTPBadRequest(text=orjson.dumps(body).decode(), content_type="application/json")


def _accept(request: web.Request, *accepted: str) -> None:
    """Refuse (400) a query parameter the route does not take, naming the ones it does."""
    unknown = sorted({name for name in request.query if name not in accepted})
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        takes = ", ".join(accepted) if accepted else "no query parameters"
        hint = " (the risk level is 'level')" if "risk" in unknown and "level" in accepted else ""
        raise _bad_request(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {listed} for "
            f"{request.method} {request.path}{hint}; accepted: {takes}",
            unknown=unknown,
            accepted=list(accepted),
        )


def _pattern(request: web.Request) -> str:
    return request.query.get("pattern") or os.environ.get("DOCPROC_PATTERN") or "process"


def _override(request: web.Request) -> str | None:
    risk = request.query.get("risk") or None
    if risk not in (None, *LEVELS):
        raise web.HTTPBadRequest(text=f"risk must be low, medium or high, got {risk!r}")
    return risk


async def _process(
    request: web.Request, name: str, body: bytes, pattern: str, risk: str | None
) -> dict[str, Any]:
    """Run one document through ``pattern``; the summary the UI shows."""
    counters = request.app[_COUNTERS]
    headers = {
        IDEMPOTENCY_HEADER: idempotency_key(name, body),
        NAME_HEADER: urllib.parse.quote(name),
    }
    if risk:
        headers[OVERRIDE_HEADER] = risk
    counters["inflight"] += 1
    try:
        reply = await mesh_client(request.app).call(pattern, Message(body, headers))
    except MeshError as exc:
        counters["failed"] += 1
        return {"name": name, "ok": False, "reason": exc.reason, "error": exc.message}
    finally:
        counters["inflight"] -= 1
    counters["processed"] += 1
    request.app[_DONE].append(time.monotonic())
    return {
        "name": name,
        "ok": True,
        "id": reply.headers.get(DOC_ID_HEADER),
        "level": reply.headers.get(LEVEL_HEADER),
        "verified": reply.body == body,
        "timings": orjson.loads(reply.headers.get(TIMINGS_HEADER, "{}")),
    }


async def _upload(request: web.Request) -> web.Response:
    _accept(request, *UPLOAD_PARAMETERS)
    body = await request.read()
    if not body:
        raise web.HTTPBadRequest(text="empty document: send its bytes as the request body")
    name = request.query.get("name") or urllib.parse.unquote(
        request.headers.get(NAME_HEADER, "upload.txt")
    )
    result = await _process(request, name, body, _pattern(request), _override(request))
    return _json(result, status=200 if result["ok"] else 502)


async def _batch(request: web.Request) -> web.Response:
    _accept(request, *BATCH_PARAMETERS)
    pattern, risk = _pattern(request), _override(request)
    files: list[tuple[str, bytes]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.filename:
            files.append((part.filename, await part.read()))
    if not files:
        raise web.HTTPBadRequest(text="no files: send multipart/form-data with file fields")
    gate = asyncio.Semaphore(BATCH_PARALLEL)

    async def one(name: str, body: bytes) -> dict[str, Any]:
        async with gate:
            return await _process(request, name, body, pattern, risk)

    results = await asyncio.gather(*(one(n, b) for n, b in files))
    return _json({"results": results, "ok": sum(r["ok"] for r in results)})


async def _store(request: web.Request, query: dict[str, Any]) -> dict[str, Any]:
    reply = await mesh_client(request.app).call("store", Message.of(query))
    found: dict[str, Any] = orjson.loads(reply.body)
    return found


async def _search(request: web.Request) -> web.StreamResponse:
    _accept(request, *SEARCH_PARAMETERS)
    query: dict[str, Any] = {"op": "search"}
    for field in ("keyword", "level", "topic"):
        if request.query.get(field):
            query[field] = request.query[field]
    if query.get("level", LEVELS[0]) not in LEVELS:
        raise _bad_request(f"level must be low, medium or high, got {query['level']!r}")
    try:
        query["limit"] = min(int(request.query.get("limit", "50")), 500)
        query["offset"] = max(int(request.query.get("offset", "0")), 0)
        return _json(await _store(request, query))
    except ValueError:
        raise web.HTTPBadRequest(text="limit and offset must be whole numbers") from None
    except MeshError as exc:
        return error_response(exc)


def _may_read(request: web.Request, level: str) -> bool:
    if level != "high":
        return True
    token = settings().reader_token
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return token is not None and hmac.compare_digest(token.encode(), given.encode())


async def _open(request: web.Request) -> web.StreamResponse:
    _accept(request)
    doc_id = request.match_info["id"]
    try:
        found = (await _store(request, {"op": "get", "id": doc_id}))["document"]
        if found is None:
            raise web.HTTPNotFound(text=f"no document {doc_id!r}")
        if not _may_read(request, found["level"]):
            return _json({"document": found, "text": None, "allowed": False})
        reply = await mesh_client(request.app).call("decrypt", Message.of({"id": doc_id}))
    except MeshError as exc:
        return error_response(exc)
    text = reply.body.decode("utf-8", errors="replace")
    return _json({"document": found, "text": text, "allowed": True})


async def _counters(request: web.Request) -> web.StreamResponse:
    _accept(request)
    counters = request.app[_COUNTERS]
    done = request.app[_DONE]
    now = time.monotonic()
    recent = sum(1 for t in reversed(done) if now - t <= RATE_WINDOW)
    try:
        store = (await _store(request, {"op": "counts"}))["counts"]
    except MeshError as exc:
        store = {"error": exc.message}
    return _json({**counters, "rate": recent / RATE_WINDOW, "store": store})
