"""The supervisor's side of autoscaling: read the managers' requests, start and retire workers.

A pool is the worker block of a manager-worker pattern that sets ``workers``.
Every ``interval`` the `PoolController`::

    read scale/<manager instance>.json (only instances of the pool's manager blocks)
      -> target = the largest request, clamped to the spec's [min, max]
      -> fewer live workers than target: start new instances at once
      -> more: retire the surplus (not-yet-ready ones first, else the newest), each
         unpublished, drained (its in-flight tasks finish) and only then stopped
      -> write pools.json (bounds, target, running, ready, retiring, requests)

The channel is bounded by construction: one small file per manager instance,
read only for instances this supervisor runs, parsed only when it changed,
and no request can leave the bounds the spec sets (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from eblocks.runtime.state import write_json
from eblocks.spec.models import ManagerWorkerSpec, MeshSpec

if TYPE_CHECKING:
    from eblocks.runtime.supervisor import Supervisor

__all__ = ["MAX_REQUEST_BYTES", "PoolBounds", "PoolController", "initial_count", "pool_bounds"]

log = logging.getLogger("eblocks.supervisor")

MAX_REQUEST_BYTES = 16 * 1024
"""A scale request larger than this is ignored (it holds a few pool names and counts)."""


@dataclass(frozen=True, slots=True)
class PoolBounds:
    """An autoscaled pool: its worker block, bounds, and the blocks allowed to resize it."""

    block: str
    low: int
    high: int
    managers: frozenset[str]

    def clamp(self, n: int) -> int:
        return max(self.low, min(self.high, n))


def pool_bounds(spec: MeshSpec) -> dict[str, PoolBounds]:
    """The autoscaled pools of ``spec`` by worker block (pure).

    A block that several patterns autoscale gets the largest ``min`` and ``max``
    among them, and may be resized by each of their managers.
    """
    pools: dict[str, PoolBounds] = {}
    for pattern in spec.patterns.values():
        if not isinstance(pattern, ManagerWorkerSpec) or pattern.manager_worker.workers is None:
            continue
        body, workers = pattern.manager_worker, pattern.manager_worker.workers
        seen = pools.get(body.worker)
        if seen is None:
            pools[body.worker] = PoolBounds(
                body.worker, workers.min, workers.max, frozenset({body.manager})
            )
        else:
            pools[body.worker] = PoolBounds(
                body.worker,
                max(seen.low, workers.min),
                max(seen.high, workers.max),
                seen.managers | {body.manager},
            )
    return pools


def initial_count(spec: MeshSpec, block: str) -> int:
    """How many instances of ``block`` to start: ``replicas``, within a pool's bounds."""
    replicas = spec.settings(block).replicas
    bounds = pool_bounds(spec).get(block)
    return bounds.clamp(replicas) if bounds is not None else replicas


def parse_request(raw: bytes, instance: str) -> dict[str, int]:
    """The pool sizes in one request file (raises ValueError naming what is wrong)."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValueError(f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("instance") != instance:
        raise ValueError(f"expected an object with 'instance': {instance!r}")
    pools = data.get("pools")
    if not isinstance(pools, dict):
        raise ValueError("'pools' must map pool names to counts")
    asks: dict[str, int] = {}
    for pool, n in pools.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"pool {pool!r}: count must be a whole number >= 0, got {n!r}")
        asks[str(pool)] = n
    return asks


@dataclass(slots=True)
class _Request:
    version: tuple[int, int] = (0, 0)
    asks: dict[str, int] = field(default_factory=dict)
    problem: str = ""


class PoolController:
    """Keeps each autoscaled pool at the size its managers ask for (one per supervisor)."""

    def __init__(self, supervisor: Supervisor, *, interval: float = 0.1) -> None:
        self._sup = supervisor
        self.bounds = pool_bounds(supervisor.spec)
        self.target = {
            pool: sum(1 for i in supervisor.instances if i.block == pool) for pool in self.bounds
        }
        self._interval = interval
        self._requests: dict[str, _Request] = {}
        self._spawned: dict[str, float] = {}  # instance -> when it was started for its pool
        self._last_start: dict[str, float] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._written: Any = None

    def __bool__(self) -> bool:
        return bool(self.bounds)

    async def run(self) -> None:
        """Reconcile until cancelled; a failed round (a process that cannot start) is retried."""
        while True:
            try:
                await self.reconcile()
            except OSError as exc:  # e.g. out of processes or file descriptors
                log.error("pools: cannot resize now (%s); trying again", exc)
                await asyncio.sleep(1.0)
            await asyncio.sleep(self._interval)

    async def aclose(self) -> None:
        """Stop reconciling; a retirement under way is left to the supervisor's stop()."""
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def reconcile(self) -> None:
        requests = self._read_requests()
        for pool, bounds in self.bounds.items():
            asks = requests.get(pool)
            if asks:
                self.target[pool] = bounds.clamp(max(asks.values()))
            await self._resize(pool)
        self._note_ready()
        self._write(requests)

    async def _resize(self, pool: str) -> None:
        members = self._sup.pool_members(pool)
        want = self.target[pool]
        if len(members) < want:
            for _ in range(want - len(members)):
                inst = await self._sup.spawn_instance(pool)
                self._spawned[inst.id] = time.monotonic()
                log.info("pool %s: started %s (target %d)", pool, inst.id, want)
        elif len(members) > want:
            # retire what serves nothing yet first, then the newest
            order = sorted(members, key=lambda i: (i.ready, _index(i.id)), reverse=True)
            order = [i for i in order if not i.ready] + [i for i in order if i.ready]
            for inst in order[: len(members) - want]:
                log.info("pool %s: retiring %s (target %d)", pool, inst.id, want)
                self._spawned.pop(inst.id, None)
                task = asyncio.create_task(self._sup.retire_instance(inst))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    def _note_ready(self) -> None:
        for inst in self._sup.instances:
            began = self._spawned.get(inst.id)
            if began is not None and inst.ready:
                del self._spawned[inst.id]
                self._last_start[inst.block] = time.monotonic() - began
                log.info(
                    "pool %s: %s ready %.2fs after it was started",
                    inst.block,
                    inst.id,
                    self._last_start[inst.block],
                )

    def _read_requests(self) -> dict[str, dict[str, int]]:
        """Requests of the manager instances this supervisor runs: pool -> instance -> n."""
        out: dict[str, dict[str, int]] = {}
        managers = {b for bounds in self.bounds.values() for b in bounds.managers}
        for inst in self._sup.instances:
            if inst.block not in managers:
                continue
            asks = self._request(inst.id, self._sup.state.scale_request(inst.id))
            for pool, n in asks.items():
                bounds = self.bounds.get(pool)
                if bounds is None or inst.block not in bounds.managers:
                    self._complain(inst.id, f"block {inst.block!r} does not autoscale {pool!r}")
                    continue
                out.setdefault(pool, {})[inst.id] = n
        return out

    def _request(self, instance: str, path: Path) -> dict[str, int]:
        seen = self._requests.setdefault(instance, _Request())
        try:
            st = path.stat()
        except FileNotFoundError:
            seen.version, seen.asks = (0, 0), {}
            return {}
        version = (st.st_ino, st.st_mtime_ns)
        if version == seen.version:
            return seen.asks
        try:
            with path.open("rb") as fh:
                asks = parse_request(fh.read(MAX_REQUEST_BYTES + 1), instance)
        except (OSError, ValueError) as exc:
            self._complain(instance, f"{path}: {exc}")
            return seen.asks  # keep the last good request
        seen.version, seen.asks, seen.problem = version, asks, ""
        return asks

    def _complain(self, instance: str, problem: str) -> None:
        seen = self._requests.setdefault(instance, _Request())
        if seen.problem != problem:  # once per distinct problem, not every tick
            log.warning("scale request of %s ignored: %s", instance, problem)
            seen.problem = problem

    def _write(self, requests: Mapping[str, Mapping[str, int]]) -> None:
        pools: dict[str, Any] = {}
        for pool, bounds in self.bounds.items():
            members = self._sup.pool_members(pool)
            pools[pool] = {
                "min": bounds.low,
                "max": bounds.high,
                "target": self.target[pool],
                "running": len(members),
                "ready": sum(1 for i in members if i.ready),
                "retiring": sum(1 for i in self._sup.instances if i.block == pool) - len(members),
                "requests": dict(requests.get(pool, {})),
                "last_start_s": _round(self._last_start.get(pool)),
            }
        data = {"pools": pools}
        if data != self._written:  # write only changes: readers see a new inode then
            with contextlib.suppress(OSError):
                write_json(self._sup.state.pools, data)
                self._written = data


def _index(instance_id: str) -> int:
    tail = instance_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
