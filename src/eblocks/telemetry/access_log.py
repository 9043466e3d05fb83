"""The access log: one JSON line per request, written off the event loop.

`AccessLog.write` only serialises the record and appends the line to an
in-memory buffer; a background task hands the buffer to one writer thread
every ``interval`` (or as soon as ``batch`` lines are waiting), so a slow
disk never stalls a request. When more than ``max_pending`` lines wait, new
lines are dropped and counted (``eblocks_access_log_dropped_total``) rather
than letting memory grow: losing log lines beats losing requests.

Line fields: ``time`` (UTC, ms), ``direction``, ``source``, ``destination``,
``route``, ``status``, ``duration_ms``, ``bytes_in``, ``bytes_out``,
``retries``, ``error`` (the mesh's reason, or null), ``request_id`` and
``trace_id`` (null when the request carries no trace context).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

__all__ = ["AccessLog"]

log = logging.getLogger("eblocks.telemetry")


class AccessLog:
    """Buffered JSON-lines writer for one instance; an async context manager."""

    def __init__(
        self,
        path: Path,
        *,
        interval: float = 0.2,
        batch: int = 512,
        max_pending: int = 20_000,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"access log interval must be > 0 seconds, got {interval}")
        if batch < 1 or max_pending < batch:
            raise ValueError(
                f"access log needs 1 <= batch <= max_pending, got {batch}/{max_pending}"
            )
        self.path = path
        self.dropped = 0
        self.written = 0
        self._interval = interval
        self._batch = batch
        self._max_pending = max_pending
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="access-log")

    def write(self, record: dict[str, Any]) -> None:
        """Queue one line (never blocks; drops and counts when the writer is behind)."""
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        if len(self._pending) >= self._batch:
            self._wake.set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name=f"access-log {self.path.name}")

    async def aclose(self) -> None:
        """Write what is pending, then stop the writer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush()
        self._thread.shutdown(wait=True)

    async def __aenter__(self) -> AccessLog:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._append, b"".join(lines))
        except OSError as exc:  # a full disk must not end the writer: count and go on
            self.dropped += len(lines)
            log.warning("access log %s: %s", self.path, exc)
            return
        self.written += len(lines)

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as fh:
            fh.write(data)
