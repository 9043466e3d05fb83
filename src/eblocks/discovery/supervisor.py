"""`SupervisorResolver`: the embedded default — endpoints published by the local supervisor.

The supervisor writes ``<state>/endpoints.json`` atomically (write + rename)
whenever an instance becomes ready or goes away. Readers look at the file's
mtime at most every ``refresh`` seconds and re-read it only when it changed,
so the request path costs one clock read almost always.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from eblocks._types import Clock, Endpoint, SystemClock

__all__ = ["ENDPOINTS_FILE", "SupervisorResolver", "write_endpoints"]

ENDPOINTS_FILE = "endpoints.json"


class SupervisorResolver:
    """Reads the endpoints the local supervisor publishes in the state dir."""

    def __init__(self, state_dir: str | Path, *, refresh: float = 0.1, clock: Clock | None = None):
        self._path = Path(state_dir) / ENDPOINTS_FILE
        self._refresh = refresh
        self._clock = clock or SystemClock()
        self._checked = float("-inf")
        self._version: tuple[int, int] | None = None
        self._view: dict[str, tuple[Endpoint, ...]] = {}

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        self._maybe_reload()
        return self._view.get(block, ())

    def view(self) -> Mapping[str, Sequence[Endpoint]]:
        self._maybe_reload()
        return dict(self._view)

    async def watch(self) -> AsyncIterator[Mapping[str, Sequence[Endpoint]]]:
        last: Mapping[str, Sequence[Endpoint]] | None = None
        while True:
            current = self.view()
            if current != last:
                last = current
                yield current
            await self._clock.sleep(self._refresh)

    def _maybe_reload(self) -> None:
        now = self._clock.monotonic()
        if now - self._checked < self._refresh:
            return
        self._checked = now
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            self._version, self._view = None, {}
            return
        version = (st.st_ino, st.st_mtime_ns)  # each publish renames a new inode into place
        if version == self._version:
            return
        try:
            data = orjson.loads(self._path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return  # keep the last good view; the writer renames atomically
        self._version = version
        self._view = _parse(data)


def _parse(data: Any) -> dict[str, tuple[Endpoint, ...]]:
    view: dict[str, tuple[Endpoint, ...]] = {}
    for block, items in (data.get("blocks") or {}).items():
        view[block] = tuple(
            Endpoint(
                block=block,
                instance=item["instance"],
                host=item["host"],
                port=int(item["port"]),
                labels=item.get("labels") or {},
            )
            for item in items
        )
    return view


def write_endpoints(state_dir: str | Path, endpoints: Sequence[Endpoint]) -> None:
    """Publish ``endpoints`` atomically (used by the supervisor)."""
    blocks: dict[str, list[dict[str, Any]]] = {}
    for ep in sorted(endpoints, key=lambda e: (e.block, e.instance)):
        blocks.setdefault(ep.block, []).append(
            {"instance": ep.instance, "host": ep.host, "port": ep.port, "labels": dict(ep.labels)}
        )
    path = Path(state_dir) / ENDPOINTS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"blocks": blocks}, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)
