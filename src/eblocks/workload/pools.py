"""The pools of one instance: its managers' queues, and the autoscalers that size their workers.

`Pools` is filled by `dispatch` as the roles of this instance are built
(a `Manager` per manager-worker pattern it manages) and shows them on the
admin API (``GET /v1/pools``). `autoscale` starts one `Autoscaler` per
pattern this block manages whose spec sets ``workers``.

An autoscaler's tick, every ``interval`` seconds::

    sample load (running + queued) -> decide() -> desired != asked? -> scaler.scale(pool, desired)
                                                  desired > current?  -> a scale-up is pending
    pending and ready workers >= its target -> scale-up done: log + `last_scale_up_s`

The scale-up time runs from the tick whose load first asked for more workers
to the tick that sees them all ready in the resolver: the time a user waits
for capacity, start-up of the processes (or pods) included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eblocks._types import Clock, Scaler, SystemClock
from eblocks.errors import ScalerError
from eblocks.patterns import Plan
from eblocks.spec.models import DivideConquer, ManagerWorker, WorkersSpec
from eblocks.workload.autoscale import Decision, Load, ScaleState, decide
from eblocks.workload.manager import Manager, WorkerLink

__all__ = ["Autoscaler", "Pools"]

log = logging.getLogger("eblocks.autoscale")

TICK = 0.2
"""Seconds between two load samples of an autoscaler."""


@dataclass(slots=True)
class _Pending:
    since: float
    ready_before: int
    target: int


class Autoscaler:
    """Samples one manager's load and resizes its worker pool through a `Scaler`."""

    def __init__(
        self,
        pattern: str,
        spec: ManagerWorker,
        pools: Pools,
        scaler: Scaler,
        *,
        clock: Clock,
        interval: float = TICK,
    ) -> None:
        if spec.workers is None:
            raise ValueError(f"pattern {pattern!r} sets no 'workers': nothing to autoscale")
        self.pattern = pattern
        self.spec = spec
        self.policy: WorkersSpec = spec.workers
        self._pools = pools
        self._scaler = scaler
        self._clock = clock
        self._interval = interval
        self._state = ScaleState()
        self._asked: int | None = None
        self._pending: _Pending | None = None
        self.last: Decision | None = None
        self.last_scale_up_s: float | None = None
        self.scale_ups = 0
        self.scale_downs = 0
        self.error = ""
        pools.register(self)

    async def run(self) -> None:
        """Tick until cancelled; a scaler failure is logged and tried again next tick."""
        while True:
            try:
                await self.tick()
            except ScalerError as exc:
                if str(exc) != self.error:
                    log.warning("pattern %s: cannot scale %s: %s", self.pattern, self.pool, exc)
                self.error = str(exc)
            await self._clock.sleep(self._interval)

    @property
    def pool(self) -> str:
        return self.spec.worker

    async def tick(self) -> Decision:
        """One sample, one decision, at most one request to the scaler."""
        now = self._clock.monotonic()
        active, queued = self._pools.load(self.pattern)
        current = await self._scaler.current(self.pool)
        known = current is not None
        if current is None:  # the scaler knows no size yet (the supervisor is still starting)
            floor = max(self._ready(), self.policy.min)
            current = self._asked if self._asked is not None else floor
        load = Load(now, active, queued, current)
        decision = decide(self.policy, self.spec.target_inflight, self._state, load)
        self._state, self.last = decision.state, decision
        # the scaler keeps a request: no need to repeat it. While it knows no size, only a
        # growth is asked for: the pool is still starting with its replicas, and the workers
        # ready so far are no size to shrink it to
        wanted = known or decision.desired > current
        if decision.desired != self._asked and wanted:
            await self._scaler.scale(self.pool, decision.desired)
            self._note_request(load, decision.desired)
            self._asked = decision.desired
        self.error = ""
        self._check_pending(now)
        self._pools.wake(self.pattern)
        return decision

    def _ready(self) -> int:
        return self._pools.ready(self.pool)

    def _note_request(self, load: Load, desired: int) -> None:
        current = load.current
        if desired > current:
            if self._pending is None:
                self._pending = _Pending(load.now, self._ready(), desired)
            self._pending.target = max(self._pending.target, desired)
            log.info(
                "pattern %s: load %d (%d running, %d queued) asks for %d workers of %s (has %d)",
                self.pattern,
                load.total,
                load.inflight,
                load.queued,
                desired,
                self.pool,
                current,
            )
            self.scale_ups += 1
        elif desired < current:
            self._pending = None
            log.info(
                "pattern %s: load stayed low for %gs; %s shrinks %d -> %d",
                self.pattern,
                self.policy.scale_down_delay,
                self.pool,
                current,
                desired,
            )
            self.scale_downs += 1

    def _check_pending(self, now: float) -> None:
        pending = self._pending
        if pending is None:
            return
        ready = self._ready()
        if ready >= pending.target:
            self.last_scale_up_s = now - pending.since
            self._pending = None
            log.info(
                "pattern %s: scale-up of %s %d -> %d workers ready in %.2fs",
                self.pattern,
                self.pool,
                pending.ready_before,
                ready,
                self.last_scale_up_s,
            )

    def snapshot(self) -> dict[str, Any]:
        decision = self.last
        return {
            "min": self.policy.min,
            "max": self.policy.max,
            "target_inflight": self.spec.target_inflight,
            "desired": decision.desired if decision else None,
            "asked": self._asked,
            "forecast": round(decision.forecast, 3) if decision else None,
            "scaling_up_for_s": (
                round(self._clock.monotonic() - self._pending.since, 3) if self._pending else None
            ),
            "last_scale_up_s": (
                round(self.last_scale_up_s, 3) if self.last_scale_up_s is not None else None
            ),
            "scale_ups": self.scale_ups,
            "scale_downs": self.scale_downs,
            "error": self.error,
        }


class Pools:
    """The managers of one instance (and their autoscalers), shown on ``/v1/pools``."""

    def __init__(self, block: str, plan: Plan, link: WorkerLink | None = None) -> None:
        self.block = block
        self._plan = plan
        self._link = link
        self._managers: dict[str, Manager] = {}
        self._autoscalers: dict[str, Autoscaler] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._scaler: Scaler | None = None

    def add(self, manager: Manager) -> None:
        """Called by `dispatch` when it builds the manager of a pattern."""
        self._managers[manager.name] = manager

    def register(self, autoscaler: Autoscaler) -> None:
        """Show ``autoscaler`` on ``/v1/pools`` (done by its constructor)."""
        self._autoscalers[autoscaler.pattern] = autoscaler

    def load(self, pattern: str) -> tuple[int, int]:
        """(running, queued) tasks of ``pattern``'s manager here; (0, 0) before its first task."""
        manager = self._managers.get(pattern)
        return (manager.active, manager.queued) if manager is not None else (0, 0)

    def wake(self, pattern: str) -> int:
        """Let queued tasks of ``pattern`` onto workers that joined since (see `Manager.wake`)."""
        manager = self._managers.get(pattern)
        return manager.wake() if manager is not None else 0

    def ready(self, block: str) -> int:
        return len(self._link.endpoints(block)) if self._link is not None else 0

    def managed(self) -> list[tuple[str, ManagerWorker]]:
        """The manager-worker patterns this block manages."""
        return [
            (name, spec)
            for name in self._plan.names()
            if isinstance(spec := self._plan.pattern(name), ManagerWorker)
            and spec.manager == self.block
        ]

    def divided(self) -> list[tuple[str, DivideConquer]]:
        """The divide-conquer patterns this block divides."""
        return [
            (name, spec)
            for name in self._plan.names()
            if isinstance(spec := self._plan.pattern(name), DivideConquer)
            and spec.divide == self.block
        ]

    def autoscale(
        self, scaler: Scaler, *, clock: Clock | None = None, interval: float = TICK
    ) -> Sequence[Autoscaler]:
        """Start an autoscaler for each pattern here that sets ``workers``; returns them."""
        clock = clock or SystemClock()
        self._scaler = scaler
        for name, spec in self.managed():
            if spec.workers is None or name in self._autoscalers:
                continue
            scaler_ = Autoscaler(name, spec, self, scaler, clock=clock, interval=interval)
            self._tasks.append(asyncio.create_task(scaler_.run(), name=f"autoscale-{name}"))
        return list(self._autoscalers.values())

    async def aclose(self) -> None:
        """Stop the autoscalers (the pool keeps its size)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        close = getattr(self._scaler, "aclose", None)  # a KubernetesScaler holds a session
        if close is not None:
            await close()

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /v1/pools`` answers: one row per pattern this instance runs."""
        rows: list[dict[str, Any]] = []
        for name, mw in self.managed():
            manager = self._managers.get(name)
            row: dict[str, Any] = {
                "pattern": name,
                "kind": "manager-worker",
                "role": "manager",
                "worker": mw.worker,
                "workers_ready": self.ready(mw.worker),
                "concurrency": mw.concurrency,
                "active": manager.active if manager else 0,
                "queued": manager.queued if manager else 0,
                "queue_max": mw.queue.max,
            }
            scaler = self._autoscalers.get(name)
            row["autoscale"] = scaler.snapshot() if scaler else None
            rows.append(row)
        for name, dc in self.divided():
            rows.append(
                {
                    "pattern": name,
                    "kind": "divide-conquer",
                    "role": "divider",
                    "worker": dc.worker,
                    "workers_ready": self.ready(dc.worker),
                    "parallel": dc.parallel,
                }
            )
        return {"block": self.block, "pools": rows}
