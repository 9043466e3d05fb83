"""Route: send each call where the first policy route that matches it says.

Outermost policy layer of a block's client stack (just inside telemetry). Per
call it reads ``policies.current`` once; the routes of its target are
compiled (`eblocks.policies.match`) once per policy version and kept until the
next one, so a target without routes costs an identity check, and a routed
call the matchers plus one draw::

    call ──> .route already set (routed by an outer stack) ─────> inner, unchanged
         └─> no route of the target matches ───────────────────> inner, unchanged
         └─> first matching route ──> destination, by weight (random or sticky)
               ├─ the target itself (maybe a subset) ──────────> inner, `with_route`
               ├─ another block ─────────> that block's whole stack, `with_route`
               └─ a pattern ─────────────> the client runs it (`x-eblocks-route` set)
             and, if the route has a ``mirror``, a shadow copy (`eblocks.layers.mirror`)

A sticky route hashes the key header (default: the idempotency key) with a
stable hash into the cumulative weights, so one key keeps its destination in
every process and across versions that keep the weights; raising a canary's
weight only moves keys onto it. Calls sent to another block are counted by
telemetry twice: under the block they were addressed to and under the block
that served them (docs/decisions.md). Routed calls are counted per route and
destination: ``eblocks_route_requests_total{route,destination}``.

A `MeshError` out of a routed call (an empty subset's ``no_endpoints``, the
route's ``timeout`` or ``per_try_timeout``, a destination's failure) names the
route in ``detail["route"]``, unless it already names one (a route further
down). The detail goes into the JSON error body, so the route is named
wherever the error travels.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from eblocks._types import Call, Layer, Send
from eblocks.balance._hash import hash64
from eblocks.errors import MeshError
from eblocks.layers.mirror import Mirrors
from eblocks.message import HASH_KEY_HEADER, IDEMPOTENCY_HEADER, ROUTE_HEADER, Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.match import MessageMatcher, compile_message_any, every_message
from eblocks.spec.policies import Destination, Mirror, Route
from eblocks.telemetry.core import Hooks

__all__ = ["RouteStats", "Routing", "destination_label", "route"]

RunPattern = Callable[[str, Message, float | None], Awaitable[Message]]
"""``run(pattern, message, deadline)``: the client walks a pattern from its first stage."""


class RouteStats:
    """Routed calls by (route name, destination label)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def publish(self, hooks: Hooks) -> None:
        """Expose the counts as ``eblocks_route_requests_total{route,destination}``."""
        hooks.counter(
            "eblocks_route_requests",
            "Calls sent on by a policy route, by route and destination",
            ("route", "destination"),
            self._samples,
        )

    def _samples(self) -> Iterable[tuple[Sequence[str], float]]:
        return [((name, dest), float(n)) for (name, dest), n in sorted(self.counts.items())]


@dataclass(frozen=True, slots=True)
class Routing:
    """What the route layer needs from its client; one per client, shared by its stacks.

    ``stack(block)`` is the client's whole outbound stack of ``block``;
    ``run_pattern`` walks a pattern. ``rng`` draws the splits and mirror samples.
    """

    policies: LivePolicies
    stack: Callable[[str], Send]
    run_pattern: RunPattern
    mirrors: Mirrors
    stats: RouteStats
    rng: random.Random


def destination_label(to: str, destination: Destination) -> str:
    """The ``destination`` metric label: ``block``, ``block/k=v,...`` or ``pattern/name``."""
    if destination.pattern is not None:
        return f"pattern/{destination.pattern}"
    block = destination.block or to
    if not destination.subset:
        return block
    return block + "/" + ",".join(f"{k}={v}" for k, v in sorted(destination.subset.items()))


@dataclass(frozen=True, slots=True)
class _Way:
    """One destination of a compiled route."""

    block: str | None  # None: a pattern
    pattern: str | None
    subset: Mapping[str, str] | None
    label: str
    counted: tuple[str, str]  # (route name, label): its key in `RouteStats.counts`


@dataclass(frozen=True, slots=True)
class _Rule:
    """One route, compiled: its matcher, its cumulative weights, what it does per call."""

    route: Route
    matches: MessageMatcher
    ways: tuple[_Way, ...]
    bounds: tuple[int, ...]  # running sums of the weights; the last is the total
    only: _Way | None  # the destination of a route that has one: no draw, no hash
    sticky: str | None  # the key header of a sticky route
    hash_header: str | None  # a sticky key header other than the idempotency key
    mirror: Mirror | None  # None too at 0 %: such a mirror copies nothing, and draws nothing

    @classmethod
    def of(cls, route: Route) -> _Rule:
        destinations = route.destinations or (Destination(),)
        kept = [d for d in destinations if d.weight > 0]
        ways = tuple(
            _Way(
                None if d.pattern is not None else d.block or route.to,
                d.pattern,
                d.subset or None,
                label := destination_label(route.to, d),
                (route.name, label),
            )
            for d in kept
        )
        bounds = tuple(itertools.accumulate(d.weight for d in kept))
        sticky = None
        if route.sticky is not None:
            sticky = (route.sticky.header or IDEMPOTENCY_HEADER).lower()
        mirror = route.mirror if route.mirror is not None and route.mirror.percent > 0 else None
        return cls(
            route,
            compile_message_any(route.match),
            ways,
            bounds,
            ways[0] if len(ways) == 1 else None,
            sticky,
            sticky if sticky != IDEMPOTENCY_HEADER else None,
            mirror,
        )

    def pick(self, message: Message, rng: random.Random) -> _Way:
        """The destination of one call: by its sticky key when it has one, else at random."""
        if len(self.ways) == 1:
            return self.ways[0]
        total = self.bounds[-1]
        key = message.headers.get(self.sticky) if self.sticky is not None else None
        point = hash64(key, b"eblocks-route") % total if key else rng.randrange(total)
        return self.ways[bisect.bisect_right(self.bounds, point)]


class _Table:
    """The compiled routes of one target for the policy version seen last."""

    __slots__ = ("names", "rules", "state", "target")

    def __init__(self, target: str) -> None:
        self.target = target
        self.state: PolicyState | None = None
        self.rules: tuple[_Rule, ...] = ()
        self.names: frozenset[str] = frozenset()

    def refresh(self, state: PolicyState) -> tuple[_Rule, ...]:
        routes = state.routes(self.target)
        self.rules = tuple(_Rule.of(r) for r in routes)
        self.names = frozenset(r.name for r in routes)
        self.state = state
        return self.rules


def route(routing: Routing, target: str) -> Layer:
    """The route layer of the stack of block ``target``."""
    policies = routing.policies
    table = _Table(target)

    def layer(inner: Send) -> Send:
        def send(call: Call) -> Awaitable[Message]:
            # a plain function: an unrouted call costs no coroutine frame here
            state = policies.current
            rules = table.rules if state is table.state else table.refresh(state)
            if not rules or call.route is not None:
                return inner(call)
            message = call.message
            for rule in rules:
                if rule.matches is every_message or rule.matches(message):
                    break
            else:
                return inner(call)  # no route of the target matches
            sent_by = message.headers.get(ROUTE_HEADER)
            if sent_by is not None and sent_by in table.names:
                return inner(call)  # a route of this target sent it to a pattern: no loop
            return _dispatch(routing, rule, call, inner)

        return send

    return layer


def _dispatch(routing: Routing, rule: _Rule, call: Call, inner: Send) -> Awaitable[Message]:
    name = rule.route.name
    try:
        sent = _send_on(routing, rule, call, inner)
    except MeshError as exc:  # a plain-function layer may raise before it awaits anything
        exc.detail.setdefault("route", name)
        raise
    return _named(name, sent)


async def _named(name: str, sent: Awaitable[Message]) -> Message:
    """``sent``'s answer; a mesh error out of it names route ``name`` (if it names none)."""
    try:
        return await sent
    except MeshError as exc:
        exc.detail.setdefault("route", name)
        raise


def _send_on(routing: Routing, rule: _Rule, call: Call, inner: Send) -> Awaitable[Message]:
    route_ = rule.route
    message = call.message
    way = rule.only or rule.pick(message, routing.rng)
    routing.stats.counts[way.counted] += 1
    if rule.mirror is not None:
        routing.mirrors.copy(route_, rule.mirror, call)
    if way.pattern is not None:
        tagged = message.replace(headers={ROUTE_HEADER: route_.name})
        return routing.run_pattern(way.pattern, tagged, call.deadline)
    if rule.hash_header is not None:
        key = message.headers.get(rule.hash_header)
        if key and HASH_KEY_HEADER not in message.headers:
            # one key, one endpoint too, when the destination's balancer hashes
            message = message.replace(headers={HASH_KEY_HEADER: key})
    block = way.block or route_.to
    routed = call.with_route(route_, block, way.subset, message)
    if block == call.target:
        return inner(routed)
    return routing.stack(block)(routed)
