"""The dashboard server: polls every instance's ``/v1/stats``, serves the page and live updates.

::

    GET /             the page (static/index.html: no build step, no external asset)
    GET /api/stats    the latest snapshot (JSON)
    GET /api/events   the snapshots as they come (Server-Sent Events)

With ``traces`` (the CLI passes the reader of the ``file`` exporter's spans),
each snapshot also lists the most recent traces.

One poller task asks every running instance (the supervisor's state file,
re-read each time, so new and restarted instances appear) every ``interval``
seconds and merges the answers (`eblocks.telemetry.aggregate`): blocks with
their inbound RED, edges between blocks (and from outside callers) with the
callers' RED. Nothing is stored beyond the latest snapshot; the page keeps
its own short history for the charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from eblocks.telemetry.aggregate import Red, block_rows, edge_rows

__all__ = ["Dashboard", "snapshot"]

Fetch = Callable[[], Awaitable[tuple[list[dict[str, Any]], list[str]]]]


def _red(red: Red) -> dict[str, Any]:
    out = red.as_dict()
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def snapshot(
    mesh: str, stats: Sequence[dict[str, Any]], missing: Sequence[str], window: str = "10s"
) -> dict[str, Any]:
    """What the page shows: blocks, edges (inside and from outside the mesh), totals."""
    blocks = []
    mesh_blocks = {s["block"] for s in stats}
    totals: dict[str, dict[str, int]] = {}
    for one in stats:
        entry = totals.setdefault(one["block"], {"requests": 0, "failures": 0})
        for edge in one.get("inbound", {}).get("edges", ()):
            entry["requests"] += int(edge["total"]["requests"])
            entry["failures"] += int(edge["total"]["failures"])
    for row in block_rows(stats, window):
        blocks.append(
            {
                "block": row.block,
                "instances": row.instances,
                "inflight": row.inflight,
                **_red(row.red),
                "total": totals.get(row.block, {}),
            }
        )
    edges = [
        {"src": e.src, "dst": e.dst, "retries": e.retries, **_red(e.red)}
        for e in edge_rows(stats, window)
    ]
    outside: dict[tuple[str, str], Red] = {}
    for one in stats:  # callers that are not blocks: the CLI, other services
        for edge in one.get("inbound", {}).get("edges", ()):
            if edge["peer"] not in mesh_blocks:
                outside.setdefault((edge["peer"], one["block"]), Red()).add(edge.get(window))
    edges += [
        {"src": src, "dst": dst, "retries": 0, "outside": True, **_red(red)}
        for (src, dst), red in sorted(outside.items())
    ]
    return {
        "mesh": mesh,
        "time": time.time(),
        "window": window,
        "instances": len(stats),
        "missing": list(missing),
        "blocks": blocks,
        "edges": edges,
    }


class Dashboard:
    """The web app; ``fetch`` returns every instance's stats and the ones that did not answer."""

    def __init__(
        self,
        mesh: str,
        fetch: Fetch,
        *,
        interval: float = 2.0,
        traces: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"dashboard interval must be > 0 seconds, got {interval}")
        self.mesh = mesh
        self.interval = interval
        self._fetch = fetch
        self._traces = traces
        self._latest: dict[str, Any] = snapshot(mesh, [], [])
        self._changed = asyncio.Condition()
        self._poller: asyncio.Task[None] | None = None
        self._page = resources.files("eblocks.dashboard").joinpath("static/index.html").read_bytes()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/api/stats", self._stats)
        app.router.add_get("/api/events", self._events)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def poll_once(self) -> dict[str, Any]:
        stats, missing = await self._fetch()
        latest = snapshot(self.mesh, stats, missing)
        if self._traces is not None:  # files on disk: read in a thread, not on the loop
            latest["traces"] = await asyncio.to_thread(self._traces)
        self._latest = latest
        async with self._changed:
            self._changed.notify_all()
        return self._latest

    async def _start(self, _: web.Application) -> None:
        await self.poll_once()
        self._poller = asyncio.create_task(self._poll(), name="dashboard poller")

    async def _stop(self, _: web.Application) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_once()
            except Exception as exc:  # one bad round must not end the live view
                self._latest = {**self._latest, "error": f"{type(exc).__name__}: {exc}"}

    async def _index(self, _: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def _stats(self, _: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self._latest), content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await response.prepare(request)
        try:
            while True:
                await response.write(b"data: " + orjson.dumps(self._latest) + b"\n\n")
                async with self._changed:
                    await self._changed.wait()
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the page went away, or the server stops
        return response
