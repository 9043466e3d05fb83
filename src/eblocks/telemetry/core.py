"""`Telemetry`: the Monitoring component of one instance.

It owns the request series of both directions (`series.py`), the gauge hooks
other components register (gossip members, pools and queues), the access log
and the tap, and renders them for ``/metrics``, ``/v1/stats`` and
``/v1/tap``. The layers that feed it are `eblocks.telemetry.inbound` (the
PM socket's requests) and `eblocks.layers.telemetry` (the client stack).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import functools
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eblocks._types import Clock, SystemClock
from eblocks.telemetry.series import Series, SeriesTable, merged
from eblocks.telemetry.tap import Tap

if TYPE_CHECKING:
    from eblocks.policies import LivePolicies
    from eblocks.spec.models import BlockSettings, MeshSpec
    from eblocks.telemetry.access_log import AccessLog
    from eblocks.telemetry.tracing import Tracing

__all__ = ["EXTERNAL", "GaugeHook", "Hooks", "Telemetry"]

EXTERNAL = "external"
"""The peer of a request that names no (valid) source block."""

_PEER = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_MAX_PEERS = 256
_MAX_INBOUND_KEYS = 4096  # (source header, route) pairs remembered by `inbound_series`

_POOL_GAUGES = (
    ("eblocks_pattern_workers", "Ready worker instances of a pattern's pool"),
    ("eblocks_pattern_capacity", "Task slots of a pattern's pool (workers x concurrency)"),
    ("eblocks_pattern_tasks_active", "Tasks holding a slot of a pattern's pool"),
    ("eblocks_pattern_queue_depth", "Tasks waiting in a pattern's queue"),
)

GaugeRead = Callable[[], Iterable[tuple[Sequence[str], float]]]


@dataclass(frozen=True, slots=True)
class GaugeHook:
    """A gauge (or counter) read at scrape time: ``read()`` yields (label values, value) pairs."""

    name: str
    doc: str
    labels: tuple[str, ...]
    read: GaugeRead
    counter: bool = False
    """A counter: exported as ``<name>_total``."""


class Hooks:
    """Where components publish gauges (pool sizes, queue depths, members by status)
    and counters (routed and mirrored requests)."""

    def __init__(self) -> None:
        self._gauges: dict[str, GaugeHook] = {}
        self._pools: dict[str, Callable[[], tuple[int, int, int, int]]] = {}

    def gauge(self, name: str, doc: str, labels: Sequence[str], read: GaugeRead) -> None:
        """Register (or replace) the gauge ``name``; ``read`` runs at every scrape."""
        self._gauges[name] = GaugeHook(_metric_name(name), doc, tuple(labels), read)

    def counter(self, name: str, doc: str, labels: Sequence[str], read: GaugeRead) -> None:
        """Register (or replace) the counter ``name`` (exported as ``name_total``)."""
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name) or name.endswith("_total"):
            raise ValueError(f"counter name {name!r} is not a valid Prometheus metric name")
        self._gauges[name] = GaugeHook(name, doc, tuple(labels), read, counter=True)

    def pool(self, pattern: str, read: Callable[[], tuple[int, int, int, int]]) -> None:
        """A manager's pool: ``read()`` gives (workers, capacity, active tasks, queued tasks)."""
        self._pools[pattern] = read
        for index, (name, doc) in enumerate(_POOL_GAUGES):
            self.gauge(name, doc, ("pattern",), functools.partial(self._pool_values, index))

    def _pool_values(self, index: int) -> list[tuple[Sequence[str], float]]:
        return [((name,), float(read()[index])) for name, read in sorted(self._pools.items())]

    def gauges(self) -> list[GaugeHook]:
        return [self._gauges[name] for name in sorted(self._gauges)]


def _metric_name(name: str) -> str:
    if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name):
        raise ValueError(f"metric name {name!r} is not a valid Prometheus metric name")
    return name


class Telemetry:
    """Counts, windows, hooks, access log and tap of one instance."""

    def __init__(
        self,
        block: str,
        instance: str,
        *,
        clock: Clock | None = None,
        access_log: AccessLog | None = None,
        tap: Tap | None = None,
        tracing: Tracing | None = None,
        requests: bool = True,
    ) -> None:
        """``requests=False`` (the spec's ``telemetry.metrics: false``): no per-request layers."""
        if not requests and (access_log is not None or tracing is not None):
            raise ValueError(
                f"telemetry of {instance!r}: requests=False leaves out the layers that write "
                "the access log and make spans; pass neither access_log nor tracing"
            )
        self.block = block
        self.instance = instance
        self.clock = clock or SystemClock()
        self.started = self.clock.monotonic()
        self.pid = os.getpid()
        self.inbound = SeriesTable("inbound")
        self.outbound = SeriesTable("outbound")
        self.hooks = Hooks()
        self.access_log = access_log
        self.tap = tap or Tap()
        self.tap.on_change = self._update_sinks
        self.tracing = tracing
        self.requests = requests
        """Whether the stacks count each request (read once, when a stack is built): when off,
        the inbound and outbound telemetry layers are left out, so no series, access log, tap
        or span; ``/metrics`` still serves the process metrics and the hooks' gauges."""
        self.sinks = False
        """Whether anybody wants per-request summaries (the access log or a tap reader)."""
        self._update_sinks()
        self.settings: BlockSettings | None = None
        self.spec: MeshSpec | None = None
        self.policies: LivePolicies | None = None
        """The policies in force (`eblocks apply` changes them; ``/v1/config`` shows them)."""
        self._peers: dict[str | None, str] = {None: EXTERNAL, "": EXTERNAL}
        self._inbound_by_raw: dict[tuple[str | None, str], Series] = {}
        self.policy_events: collections.Counter[tuple[str, str]] = collections.Counter()
        """What the block's inbound policies did, by (reason, rule): refusals and delays."""

    async def start(self) -> None:
        if self.access_log is not None:
            await self.access_log.start()

    async def aclose(self) -> None:
        if self.access_log is not None:
            await self.access_log.aclose()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # flushes spans: not on the loop

    def peer(self, raw: str | None) -> str:
        """The source block a request names, as a label value (unknown shapes: external)."""
        found = self._peers.get(raw)
        if found is None:
            found = raw if raw is not None and _PEER.match(raw) else EXTERNAL
            if len(self._peers) < _MAX_PEERS:
                self._peers[raw] = found
        return found

    def inbound_series(self, raw: str | None, route: str) -> Series:
        """The inbound series of requests from ``raw`` (the source header) to ``route``.

        One dict lookup on the request's own values, for what is otherwise the
        source's label (`peer`) and then its series: a request's hot path.
        """
        key = (raw, route)
        found = self._inbound_by_raw.get(key)
        if found is None:
            found = self.inbound.get(self.peer(raw), route)
            if len(self._inbound_by_raw) < _MAX_INBOUND_KEYS:
                self._inbound_by_raw[key] = found
        return found

    def policy_event(self, reason: str, rule: str) -> None:
        """A policy refused (``rate_limited``, ``overloaded``, ``fault_injected``) or delayed
        (``fault_delayed``) a request; ``rule`` names it (``rate_limits[0]``, ``bulkhead``)."""
        self.policy_events[reason, rule] += 1

    def _update_sinks(self) -> None:
        self.sinks = self.access_log is not None or bool(self.tap)

    def emit(
        self,
        inbound: bool,
        peer: str,
        route: str,
        status: int,
        duration: float,
        nin: int,
        nout: int,
        retries: int,
        reason: str | None,
        request_id: str | None,
        trace_id: str | None,
    ) -> None:
        """One request summary to the access log and the tap (only when either listens)."""
        record = {
            "time": datetime.datetime.fromtimestamp(time.time(), datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "direction": "inbound" if inbound else "outbound",
            "source": peer if inbound else self.block,
            "destination": self.block if inbound else peer,
            "route": route,
            "status": status,
            "duration_ms": round(duration * 1000, 3),
            "bytes_in": nin,
            "bytes_out": nout,
            "retries": retries,
            "error": reason,
            "request_id": request_id,
            "trace_id": trace_id,
            "instance": self.instance,
        }
        if self.access_log is not None:
            self.access_log.write(record)
        if self.tap:
            self.tap.publish(record)

    def stats(self, windows: Sequence[int] = (10, 60)) -> dict[str, Any]:
        """RED per edge, per route and per peer of both directions, over ``windows`` seconds.

        A window longer than the instance's uptime spans the uptime (its rps too).
        """
        now = self.clock.monotonic()
        body: dict[str, Any] = {
            "block": self.block,
            "instance": self.instance,
            "pid": self.pid,
            "uptime_s": round(now - self.started, 3),
            "windows": [f"{w}s" for w in windows],
        }
        for table in (self.inbound, self.outbound):
            series = list(table)
            edges = []
            for one in sorted(series, key=lambda s: (s.peer, s.route)):
                row: dict[str, Any] = {
                    "peer": one.peer,
                    "route": one.route,
                    "inflight": one.inflight,
                    "total": {
                        "requests": one.requests,
                        "failures": sum(n for st, n in one.statuses.items() if st >= 500),
                        "retries": one.retries,
                        "bytes_in": one.bytes_in,
                        "bytes_out": one.bytes_out,
                        "errors": dict(one.errors),
                    },
                }
                for w in windows:
                    row[f"{w}s"] = one.window(w, now, self.started).summary()
                edges.append(row)
            body[table.direction] = {
                "edges": edges,
                "by_route": self._grouped(series, windows, now, self.started, by_peer=False),
                "by_peer": self._grouped(series, windows, now, self.started, by_peer=True),
            }
        return body

    @staticmethod
    def _grouped(
        series: Sequence[Any], windows: Sequence[int], now: float, since: float, *, by_peer: bool
    ) -> list[dict[str, Any]]:
        groups: dict[str, list[Any]] = {}
        for one in series:
            groups.setdefault(one.peer if by_peer else one.route, []).append(one)
        rows = []
        for key in sorted(groups):
            row: dict[str, Any] = {"peer" if by_peer else "route": key}
            for w in windows:
                row[f"{w}s"] = merged(groups[key], w, now, since).summary()
            rows.append(row)
        return rows
