"""Mirror: copy a share of a route's requests to a shadow block, fire-and-forget.

The route layer (`eblocks.layers.route`) hands every request of a route that
has a ``mirror`` above 0 % to `Mirrors.copy` (at 0 % nothing is copied and
nothing drawn), which decides synchronously and never waits::

    request ──> sampled out (1 - percent)            nothing
            └─> sampled in ──> max_inflight reached  dropped
                           └─> a task of its own ──> ok | failed | cancelled (client closing)

The copy goes through the mirror block's own client stack (its deadline,
retries, balancer, telemetry) with ``Call.route`` set, so it is never routed
or mirrored again, and it carries ``x-eblocks-mirror: 1`` so the receiving
block can tell a shadow request from a real one. Its answer and its error are
discarded; only their outcome is counted
(``eblocks_mirror_requests_total{route,outcome}``). Nothing of the copy runs
on the caller's path but a random draw, a counter check and `create_task`.

The tasks are tracked; `Mirrors.aclose` (called by `MeshClient.aclose`)
cancels and awaits the ones still running, so none outlives its client.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from eblocks._types import Call, Send
from eblocks.message import MIRROR_HEADER
from eblocks.spec.policies import Mirror, Route
from eblocks.telemetry.core import Hooks

__all__ = ["OUTCOMES", "Mirrors"]

OUTCOMES = ("ok", "failed", "dropped", "cancelled")
"""How a sampled-in copy ends; each copy is counted once, under one of them."""

_SHADOW = {MIRROR_HEADER: "1"}


class Mirrors:
    """The shadow copies of one client: sampling, the in-flight bound, the tasks, the counts.

    ``stack(block)`` is the client's whole outbound stack of a block. In-flight
    counts are kept per route name, so they survive a policy version that
    leaves the route in place.
    """

    __slots__ = ("_closed", "_inflight", "_rng", "_stack", "_tasks", "counts")

    def __init__(self, stack: Callable[[str], Send], rng: random.Random) -> None:
        self._stack = stack
        self._rng = rng
        self._inflight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.counts: Counter[tuple[str, str]] = Counter()
        """Copies by (route name, outcome)."""

    def copy(self, route: Route, mirror: Mirror, call: Call) -> None:
        """Maybe start a shadow copy of ``call`` (as ``route`` sent it); never blocks or raises."""
        if mirror.percent < 100 and self._rng.random() * 100 >= mirror.percent:
            return
        name = route.name
        if self._closed or self._inflight[name] >= mirror.max_inflight:
            self.counts[name, "dropped"] += 1
            return
        self._inflight[name] += 1
        task = asyncio.get_running_loop().create_task(self._run(route, mirror, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def inflight(self, route: str) -> int:
        """Copies of ``route`` running now."""
        return self._inflight[route]

    async def _run(self, route: Route, mirror: Mirror, call: Call) -> None:
        outcome = "failed"
        try:
            shadow = Call(
                mirror.to,
                call.message.replace(headers=_SHADOW),
                call.deadline,
                None,
                1,
                route,
                mirror.subset or None,
            )
            await self._stack(mirror.to)(shadow)
            outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception:  # a shadow's failure is counted, never raised to the caller
            pass
        finally:
            self._inflight[route.name] -= 1
            self.counts[route.name, outcome] += 1

    def publish(self, hooks: Hooks) -> None:
        """Expose the counts as ``eblocks_mirror_requests_total{route,outcome}``."""
        hooks.counter(
            "eblocks_mirror_requests",
            "Shadow copies of routed requests by route and outcome (ok, failed, dropped, ...)",
            ("route", "outcome"),
            self._samples,
        )

    def _samples(self) -> Iterable[tuple[Sequence[str], float]]:
        return [((route, outcome), float(n)) for (route, outcome), n in sorted(self.counts.items())]

    async def aclose(self) -> None:
        """Stop taking copies; cancel and await the ones in flight."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
