"""The tap: a live, bounded stream of request summaries (``GET /v1/tap``).

Each subscriber gets its own bounded queue; a subscriber that reads too
slowly loses summaries (counted, and told in the stream) instead of slowing
the requests down. With nobody subscribed, publishing costs one truth test.

The stream is NDJSON: one summary per line (the access log's fields), and a
``{"dropped": n}`` line whenever summaries were lost since the last line.
It ends after ``limit`` summaries or ``seconds`` (both bounded by the server); a
bound that is not a finite number above 0 is refused with a 400 naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

__all__ = ["MAX_LIMIT", "MAX_SECONDS", "Tap", "TapFilter"]

MAX_LIMIT = 100_000
MAX_SECONDS = 3600.0
_FIELDS = ("direction", "source", "destination", "route", "status")


def _nothing() -> None:
    return None


def _bound(query: Mapping[str, str], name: str, default: str, most: float, *, whole: bool) -> float:
    """A stream's bound from the query: a finite number above 0, cut to ``most`` (or a 400).

    Refused before the stream starts: a NaN or infinite deadline would pass
    every comparison and crash the pump after the 200 was sent.
    """
    raw = query.get(name, default)
    try:
        value: float = int(raw) if whole else float(raw)  # a Python int has no NaN nor Inf
    except ValueError:
        value = math.nan
    if not (value > 0 and (whole or math.isfinite(value))):
        kind = "a whole number" if whole else "a finite number of seconds"
        raise web.HTTPBadRequest(
            text=f"/v1/tap: {name} must be {kind} above 0 (more is cut to {most:g}), got {raw!r}"
        )
    return min(value, most)


class TapFilter:
    """Which summaries a subscriber wants: equality on a few fields (all must match)."""

    __slots__ = ("_want",)

    def __init__(self, want: Mapping[str, str]) -> None:
        unknown = sorted(set(want) - set(_FIELDS))
        if unknown:
            known = ", ".join(_FIELDS)
            raise ValueError(f"unknown tap filter {', '.join(unknown)} (known: {known})")
        self._want = dict(want)

    def __call__(self, record: Mapping[str, Any]) -> bool:
        return all(str(record.get(k)) == v for k, v in self._want.items())


class _Subscriber:
    __slots__ = ("dropped", "match", "queue")

    def __init__(self, match: TapFilter, size: int) -> None:
        self.match = match
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.dropped = 0


class Tap:
    """Fan request summaries out to the current subscribers."""

    def __init__(self, *, max_subscribers: int = 16, queue: int = 1000) -> None:
        self.max_subscribers = max_subscribers
        self.queue_size = queue
        self.dropped = 0
        self._subscribers: list[_Subscriber] = []
        self.on_change: Callable[[], None] = _nothing

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, record: dict[str, Any]) -> None:
        for sub in self._subscribers:
            if sub.match(record):
                try:
                    sub.queue.put_nowait(record)
                except asyncio.QueueFull:
                    sub.dropped += 1
                    self.dropped += 1

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/tap?limit=N&seconds=S&route=R&source=B&direction=inbound``."""
        query = request.query
        limit = int(_bound(query, "limit", "1000", MAX_LIMIT, whole=True))
        seconds = _bound(query, "seconds", "60", MAX_SECONDS, whole=False)
        try:
            match = TapFilter({k: v for k, v in query.items() if k not in ("limit", "seconds")})
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"/v1/tap: {exc}") from exc
        if len(self._subscribers) >= self.max_subscribers:
            raise web.HTTPServiceUnavailable(text="/v1/tap: too many subscribers, try later")
        response = web.StreamResponse(headers={"content-type": "application/x-ndjson"})
        await response.prepare(request)
        sub = _Subscriber(match, self.queue_size)
        self._subscribers.append(sub)
        self.on_change()
        try:
            await self._pump(sub, response, limit, seconds)
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the reader went away
        finally:
            self._subscribers.remove(sub)
            self.on_change()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _pump(
        self, sub: _Subscriber, response: web.StreamResponse, limit: int, seconds: float
    ) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        sent = reported = 0
        while sent < limit:
            left = end - loop.time()
            if left <= 0:
                return
            try:
                record = await asyncio.wait_for(sub.queue.get(), min(left, 1.0))
            except TimeoutError:
                await response.write(b"\n")  # keep-alive: notice a gone reader early
                continue
            if sub.dropped != reported:
                await response.write(orjson.dumps({"dropped": sub.dropped - reported}) + b"\n")
                reported = sub.dropped
            await response.write(orjson.dumps(record) + b"\n")
            sent += 1
