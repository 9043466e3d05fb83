"""The manager role of a manager-worker pattern: a bounded queue in front of a worker pool.

One `Manager` per (instance, pattern). A task's way through it::

    arrives --slot free, nobody queued--> dispatched --answer--> answered
       |                                      |
       |                                      '--transient failure, tries left-->
       |                                         dispatched again, to another worker
       |--no slot, queue has room--> queued --a slot is handed over--> dispatched
       '--no slot, queue full--> refused: 429 overloaded + retry-after

The pool has ``concurrency`` slots per ready worker instance. A finishing task
hands its slot straight to the oldest queued one (first come, first served),
so a task that arrives later never overtakes the queue. A transient failure
is a worker that could not be reached, answered 502/503/504 or did not answer
within the worker block's ``timeout``; the task goes to another worker with the
same idempotency key, so a worker that did the work before it died causes no
second effect. Handler errors (500) are answered, not retried.

How many workers there are is the resolver's business: a `Scaler` changes
the pool by starting and retiring worker instances (`pools.Autoscaler`), and
the manager follows the resolver's view; `wake` lets queued tasks onto
workers that just joined.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from eblocks._types import Clock, Endpoint
from eblocks.balance import Balancer, Feedback, endpoint_key
from eblocks.block.context import Context
from eblocks.errors import (
    BadRequestError,
    ConnectError,
    MeshError,
    MeshTimeoutError,
    NoEndpointsError,
    QueueFullError,
    UpstreamError,
)
from eblocks.layers.balance import endpoint_failed, hash_key
from eblocks.layers.retry import already_retried, backoff_delay, gave_up
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.spec.models import ManagerWorker, RetryPolicy

__all__ = ["RETRY_AFTER", "Manager", "WorkerLink", "is_transient", "relay"]

RETRY_AFTER = 1.0
"""Seconds a refused caller is asked to wait (``retry-after``)."""


class WorkerLink(Protocol):
    """How a manager reaches its workers (`MeshClient` is one)."""

    def endpoints(self, block: str) -> Sequence[Endpoint]: ...

    async def send_to(
        self, endpoint: Endpoint, msg: Message, *, deadline: float | None = None
    ) -> Message: ...


def is_transient(exc: BaseException) -> bool:
    """Whether a worker's failure is worth a try on another worker (pure).

    Not one that a layer below already retried (`already_retried`).
    """
    if isinstance(exc, MeshError) and already_retried(exc):
        return False
    if isinstance(exc, ConnectError | NoEndpointsError | MeshTimeoutError):
        return True
    return isinstance(exc, UpstreamError) and exc.upstream_status in (502, 503, 504)


async def relay(msg: Message, ctx: Context) -> Message:
    """The handler of a block that only manages workers: a direct call is a mistake."""
    raise BadRequestError(
        f"block {ctx.block!r} only manages workers; call its manager-worker pattern by name",
        detail={"block": ctx.block},
    )


class Manager:
    """Queue, dispatch and retry the tasks of one manager-worker pattern."""

    __slots__ = (
        "_active",
        "_backoff",
        "_balancer",
        "_clock",
        "_feedback",
        "_inflight",
        "_link",
        "_queue",
        "_rng",
        "name",
        "spec",
    )

    def __init__(
        self,
        name: str,
        spec: ManagerWorker,
        link: WorkerLink,
        *,
        balancer: Balancer,
        backoff: RetryPolicy,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.spec = spec
        self._link = link
        self._balancer = balancer
        self._feedback = balancer if isinstance(balancer, Feedback) else None
        self._backoff = backoff
        self._clock = clock
        self._rng = rng
        self._active = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._inflight: dict[str, int] = {}

    @property
    def active(self) -> int:
        """Tasks holding a slot (being sent to, or run by, a worker)."""
        return self._active

    @property
    def queued(self) -> int:
        """Tasks waiting for a slot."""
        return sum(1 for fut in self._queue if not fut.done())

    def gauges(self) -> tuple[int, int, int, int]:
        """(ready workers, task slots, active tasks, queued tasks), for telemetry."""
        workers = len(self._link.endpoints(self.spec.worker))
        return workers, workers * self.spec.concurrency, self._active, self.queued

    async def handle(self, msg: Message, ctx: Context) -> Message:
        """Run one task on a worker; the worker's reply is the answer."""
        await self._admit()
        try:
            return await self._run(msg, ctx)
        finally:
            self._release()

    # -- the queue -------------------------------------------------------------

    def _capacity(self) -> int:
        return len(self._link.endpoints(self.spec.worker)) * self.spec.concurrency

    def _has_room(self) -> bool:
        capacity = self._capacity()
        return capacity == 0 or self._active < capacity  # no worker at all: fail fast, not wait

    async def _admit(self) -> None:
        if not self._queue and self._has_room():
            self._active += 1
            return
        if self.queued >= self.spec.queue.max:
            raise QueueFullError(
                f"every worker of pattern {self.name!r} is busy and its queue is full",
                detail={
                    "pattern": self.name,
                    "queue": self.spec.queue.max,
                    "retry_after": RETRY_AFTER,
                },
            )
        slot = asyncio.get_running_loop().create_future()
        self._queue.append(slot)
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._release()  # the slot came with the cancellation: pass it on
            elif slot in self._queue:
                self._queue.remove(slot)
            raise

    def _release(self) -> None:
        self._active -= 1
        self.wake()

    def wake(self) -> int:
        """Hand free slots to queued tasks, oldest first; returns how many started.

        A finishing task calls it; so does the autoscaler each tick, so workers that
        joined the pool take queued tasks at once, not after the next task finishes.
        """
        started = 0
        while self._queue and self._has_room():
            slot = self._queue.popleft()
            if not slot.done():
                self._active += 1  # handed over: the slot never becomes free in between
                slot.set_result(None)
                started += 1
        return started

    # -- dispatch ----------------------------------------------------------------

    async def _run(self, msg: Message, ctx: Context) -> Message:
        # Without a key of its own, a task is keyed by its request: retries of
        # this one task must not duplicate its effect.
        key = msg.headers.get(IDEMPOTENCY_HEADER) or ctx.idempotency_key or ctx.request_id
        task = msg.replace(headers={IDEMPOTENCY_HEADER: key})
        failed: set[str] = set()
        attempt = 1
        while True:
            try:
                endpoint = self._pick(task, failed)
                return await self._send(endpoint, task, ctx.deadline, failed)
            except MeshError as exc:
                if not is_transient(exc):
                    raise
                delay = backoff_delay(attempt, self._backoff, self._rng)
                late = ctx.deadline is not None and self._clock.monotonic() + delay >= ctx.deadline
                if attempt >= self.spec.attempts or late:
                    gave_up(exc, attempt)  # the pattern's tries are spent: nobody above retries
                    raise
                ctx.logger.info("task of %s: retrying after %s", self.name, exc.message)
                await self._clock.sleep(delay)
                attempt += 1

    def _pick(self, task: Message, failed: set[str]) -> Endpoint:
        endpoints = self._link.endpoints(self.spec.worker)
        if not endpoints:
            raise NoEndpointsError(
                f"no ready worker {self.spec.worker!r} for pattern {self.name!r}",
                detail={"pattern": self.name, "target": self.spec.worker},
            )
        fresh = [e for e in endpoints if endpoint_key(e) not in failed] or list(endpoints)
        limit = self.spec.concurrency
        free = [e for e in fresh if self._inflight.get(endpoint_key(e), 0) < limit]
        return self._balancer.pick(free or fresh, hash_key(task))

    async def _send(
        self, endpoint: Endpoint, task: Message, deadline: float | None, failed: set[str]
    ) -> Message:
        ident = endpoint_key(endpoint)
        self._inflight[ident] = self._inflight.get(ident, 0) + 1
        ticket = self._feedback.begin(endpoint, len(task.body)) if self._feedback else None
        ok = True
        try:
            return await self._link.send_to(endpoint, task, deadline=deadline)
        except BaseException as exc:  # cancellation too: the counts must always drop
            ok = not endpoint_failed(exc)
            if not ok:
                failed.add(ident)
            raise
        finally:
            if self._feedback is not None and ticket is not None:
                self._feedback.end(ticket, ok=ok)
            left = self._inflight[ident] - 1
            if left:
                self._inflight[ident] = left
            else:
                del self._inflight[ident]
