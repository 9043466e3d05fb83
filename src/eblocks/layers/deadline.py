"""Deadline: bound a whole call (every try) by its timeout, and each try by its own.

`deadline` bounds the whole call by the matched route's ``timeout`` when it
has one, else the target block's. `per_try_deadline` sits below the retry
layer and bounds one try by the route's ``per_try_timeout`` (if any), so a
slow try fails with ``timeout`` and is retried while the call's time lasts;
a try that the call's deadline ends first gets no watch of its own.

The call's deadline becomes ``min(inherited deadline, now + timeout)``; a call
whose deadline has passed fails at once with ``timeout`` and never reaches the
network. Inner layers see ``Call.deadline`` and the transport propagates the
remaining time downstream in ``x-eblocks-timeout-ms``.

The bound is enforced as `asyncio.timeout` does it — the calling task is
cancelled and the cancellation becomes `MeshTimeoutError` — but all in-flight
calls of a layer share one event-loop timer (`Watch`, also used by the
inbound deadline of `eblocks.block.inbound`): a loop timer per call
was the largest single cost of the client stack (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable

from eblocks._types import Call, Clock, Layer, Send
from eblocks.errors import MeshTimeoutError
from eblocks.message import Message

__all__ = ["Watch", "deadline", "per_try_deadline"]


def deadline(timeout: float, clock: Clock) -> Layer:
    """Bound each call by its route's ``timeout``, else ``timeout`` (the block's)."""
    watch = Watch()

    def layer(inner: Send) -> Send:
        def send(call: Call) -> Awaitable[Message]:
            route = call.route
            seconds = route.timeout if route is not None and route.timeout is not None else timeout
            return _bounded(call, None, seconds, clock, watch, inner, False)

        return send

    return layer


def per_try_deadline(clock: Clock) -> Layer:
    """Bound each try by its route's ``per_try_timeout``; without one, pass it on as is.

    A try whose per-try timeout would end at or after the call's deadline is
    passed on as is too: the call's deadline (the `deadline` layer's watch)
    already ends it first, so a second watch would change nothing.
    """
    watch = Watch()

    def layer(inner: Send) -> Send:
        def send(call: Call) -> Awaitable[Message]:
            route = call.route
            if route is None or route.per_try_timeout is None:
                return inner(call)
            seconds, deadline = route.per_try_timeout, call.deadline
            now = clock.monotonic()
            if deadline is not None and now < deadline <= now + seconds:
                return inner(call)  # (a passed deadline: `_bounded` raises at once)
            return _bounded(call, now, seconds, clock, watch, inner, True)

        return send

    return layer


async def _bounded(
    call: Call,
    now: float | None,  # the time the caller read just before (the per-try layer's)
    seconds: float,
    clock: Clock,
    watch: Watch,
    inner: Send,
    per_try: bool,
) -> Message:
    if now is None:
        now = clock.monotonic()
    limit = now + seconds
    if call.deadline is not None and call.deadline < limit:
        limit = call.deadline
    remaining = limit - now
    if remaining <= 0:
        raise MeshTimeoutError(f"deadline passed before calling {call.target!r}")
    entry = watch.add(remaining)
    try:
        return await inner(call.with_deadline(limit))
    except asyncio.CancelledError as exc:
        if entry.close():
            raise MeshTimeoutError(
                f"no answer from {call.target!r} within {remaining:.3f}s",
                detail={"target": call.target, "per_try": True}
                if per_try
                else {"target": call.target},
            ) from exc
        raise
    finally:
        entry.close()


_running_loop, _current_task = asyncio.get_running_loop, asyncio.current_task
_push, _pop = heapq.heappush, heapq.heappop  # module globals: one lookup each, per call


class _Entry:
    """One in-flight call: running -> done, or running -> fired (task cancelled) -> done."""

    __slots__ = ("_cancelling", "_task", "done", "fired")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self._task: asyncio.Task[object] | None = task
        self._cancelling = task.cancelling()  # cancel requests that were not ours
        self.done = False
        self.fired = False

    def fire(self) -> None:
        if not self.done and self._task is not None:
            self.fired = True
            self._task.cancel()

    def close(self) -> bool:
        """Mark the call finished; True if our cancel is the only one it received."""
        self.done = True
        task, self._task = self._task, None  # a finished call must not keep its task alive
        return self.fired and task is not None and task.uncancel() <= self._cancelling


class Watch:
    """The in-flight calls of one layer in a heap by deadline, one loop timer at the front.

    Finished calls leave the heap lazily, when they reach its front; the timer
    is re-armed only when a call with an earlier deadline arrives.
    """

    __slots__ = ("_handle", "_heap", "_loop", "_order", "_when")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, _Entry]] = []
        self._order = itertools.count()  # ties on the deadline never compare entries
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0

    def add(self, remaining: float) -> _Entry:
        """Watch the current task: cancel it unless it finishes within ``remaining``."""
        loop = _running_loop()
        task = _current_task(loop)
        if task is None:
            raise RuntimeError("the deadline layer must run inside an asyncio task")
        if loop is not self._loop:  # a new event loop: the old timer died with the old one
            self._loop, self._heap, self._handle = loop, [], None
        entry = _Entry(task)
        when = loop.time() + remaining
        heap = self._heap
        _push(heap, (when, next(self._order), entry))
        while heap[0][2].done:
            _pop(heap)
        if self._handle is None or when < self._when:
            self._arm(loop, when)
        return entry

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(when, self._fire)
        self._when = when

    def _fire(self) -> None:
        """Cancel every call due by the time this timer was armed for; re-arm at the next."""
        self._handle = None
        heap = self._heap
        while heap and (heap[0][0] <= self._when or heap[0][2].done):
            heapq.heappop(heap)[2].fire()
        if heap and self._loop is not None:
            self._arm(self._loop, heap[0][0])
