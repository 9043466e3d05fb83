"""The one place the order of layers is decided.

Outbound, outermost first (DESIGN.md; later layers slot into this list)::

    telemetry -> route (incl. mirror) -> deadline -> retry (budget) -> limits -> balancer
      (the target's `balancer`, outlier detection) -> per-try deadline -> tries -> token
      -> transport

The route layer (`eblocks.layers.route`) is there when the client gives a
`Routing` (a `MeshClient` always does): a matched call goes on down this
stack (the target, maybe a labelled subset), into another block's whole stack
with ``Call.route`` set (so not routed again), or to a pattern; a route's
mirror copies run in tasks of their own through the mirror block's stack.

The deadline is the call's route's ``timeout`` (else the block's) and the
per-try deadline its ``per_try_timeout``; below the retry layer, a slow try is
retried. The retry budget, ``limits.max_pending`` and outlier detection
follow the live policies (`eblocks.policies`): each request compares the
version in force with the one they looked theirs up in (an identity test),
and looks again only when it changed.

To one endpoint chosen by a pattern's manager (its own balancer and retries)::

    telemetry -> deadline (the worker's timeout: one try) -> tries -> token -> transport

The telemetry layers (`eblocks.layers.telemetry`) are there when the client
has a `Telemetry` that counts requests (a block's client, unless the spec sets
``telemetry.metrics: false``; the CLI's has none). The token layer
(per-hop request JWT, `eblocks.security`) is there when the mesh's
``security.tokens.mode`` is not ``off``; it signs once per try.

Inbound, outermost first (the PM socket's telemetry and mTLS/authz admission
are in front of all of these, in `block.py`)::

    deadline (from x-eblocks-timeout-ms; cancels the handler when it passes)
      -> rate limit -> bulkhead -> fault -> role dispatch -> PM

Rate limit, bulkhead and fault enforce the block's own policies
(``policies.blocks.<name>``, read from the live `PolicyState` on each
request; `Admission` holds their state across versions). A block whose
policies have none of them pays one cached lookup per layer, and no
coroutine frame: a layer with nothing to do hands its inner layer's awaitable
back (so do the bulkhead for a request it does not count and the fault layer
for one no fault applies to). An application
block (an aiohttp app) gets the same three, in the same order, as one
middleware (`app_admission`) over its real method, path and query.

Adding a concern is one module in `eblocks.layers` plus one line here.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from eblocks._types import Clock, Layer, Resolver, Send
from eblocks.balance import make_balancer
from eblocks.block.inbound import Handle, InboundLayer, inbound_deadline
from eblocks.layers import balance, deadline, per_try_deadline, retry
from eblocks.layers.budget import Budgets
from eblocks.layers.bulkhead import Bulkheads, bulkhead
from eblocks.layers.fault import Faults, fault
from eblocks.layers.limits import limits
from eblocks.layers.meter import meter_of
from eblocks.layers.outlier import Detectors
from eblocks.layers.ratelimit import RateLimits, rate_limit
from eblocks.layers.route import Routing, route
from eblocks.layers.telemetry import telemetry as observe
from eblocks.layers.telemetry import tries
from eblocks.policies import LivePolicies
from eblocks.policies.inbound import source_of
from eblocks.policies.match import RequestView, view_applies
from eblocks.policies.target import Served, request_view
from eblocks.spec.models import BlockSettings
from eblocks.spec.policies import Policies
from eblocks.telemetry.core import Telemetry

__all__ = ["Admission", "app_admission", "client_stack", "endpoint_stack", "server_stack"]


def client_stack(
    target: BlockSettings,
    resolver: Resolver,
    transport: Send,
    clock: Clock,
    rng: random.Random,
    telemetry: Telemetry | None = None,
    token: Layer | None = None,
    routing: Routing | None = None,
    policies: LivePolicies | None = None,
) -> Send:
    """The outbound `Send` for calls to the block ``target`` (``policies``: the live ones)."""
    name, live = target.name, policies or LivePolicies.of(Policies())
    meter = meter_of(telemetry) if telemetry is not None else None
    detectors, refused = Detectors(live, name, clock), None
    if meter is not None:
        meter.watch(name, detectors)
        refused = meter.on_refused(name)
    layers: list[Layer] = [
        deadline(target.timeout, clock),
        retry(target.retries, clock, rng, Budgets(live, name, clock), refused),
        limits(live, name),
        balance(resolver, make_balancer(target.balancer, rng=rng, clock=clock), detectors.current),
        per_try_deadline(clock),
    ]
    if routing is not None:
        layers.insert(0, route(routing, target.name))
    if telemetry is not None and telemetry.requests:
        layers.insert(0, observe(telemetry, target.name))
        layers.append(tries(telemetry, target.name))
    if token is not None:
        layers.append(token)
    return _assemble(layers, transport)


def endpoint_stack(
    target: BlockSettings,
    transport: Send,
    clock: Clock,
    telemetry: Telemetry | None = None,
    token: Layer | None = None,
) -> Send:
    """The outbound `Send` for calls whose `Call.endpoint` the caller already chose."""
    layers: list[Layer] = [deadline(target.timeout, clock)]
    if telemetry is not None and telemetry.requests:
        layers = [observe(telemetry, target.name), *layers, tries(telemetry, target.name)]
    if token is not None:
        layers.append(token)
    return _assemble(layers, transport)


@dataclass(frozen=True, slots=True)
class Admission:
    """The state of a block's inbound policies (buckets, bulkhead counts, fault RNG)."""

    limits: RateLimits
    bulkheads: Bulkheads
    faults: Faults
    clock: Clock

    @classmethod
    def of(
        cls,
        live: LivePolicies,
        block: str,
        clock: Clock,
        rng: random.Random,
        telemetry: Telemetry | None = None,
    ) -> Admission:
        """``block``'s admission over ``live``; refusals are counted in ``telemetry``."""
        count = telemetry.policy_event if telemetry is not None else None
        return cls(
            RateLimits(live, block, clock, on_deny=count),
            Bulkheads(live, block, on_deny=count),
            Faults(live, block, rng, on_event=count),
            clock,
        )


def server_stack(pm: Handle, clock: Clock, admission: Admission | None = None) -> Handle:
    """The inbound `Handle` in front of a block's role dispatch and handler."""
    layers: list[InboundLayer] = [inbound_deadline(clock)]
    if admission is not None:
        layers += [
            rate_limit(admission.limits),
            bulkhead(admission.bulkheads),
            fault(admission.faults, admission.clock),
        ]
    handle = pm
    for layer in reversed(layers):
        handle = layer(handle)
    return handle


AioHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def app_admission(
    admission: Admission,
    peer_of: Callable[[web.Request], str | None],
    served: Served = "app",
    *,
    edge: bool = False,
) -> Middleware:
    """`server_stack`'s rate limit -> bulkhead -> fault for an application block.

    One aiohttp middleware, after the block's telemetry and mTLS admission
    (``peer_of`` gives the verified SPIFFE ID they found). Requests are matched
    on the method, path and query they are for (`request_view`: an app's real
    ones; behind the sidecar, what the program is asked); a refusal is raised as the
    `MeshError` the handler path raises, and `block.py` answers it.
    """
    limits, bulkheads, faults = admission.limits, admission.bulkheads, admission.faults

    def source(request: web.Request) -> str:
        """Who asks: the verified peer; else, at the edge, the address (a header is anyone's)."""
        peer = peer_of(request)
        if edge:
            return peer or f"addr:{request.remote or 'unknown'}"
        return source_of(peer, request.headers)

    rl_cache, bh_cache, f_cache = limits.cache, bulkheads.cache, faults.cache
    sleep = admission.clock.sleep

    @web.middleware
    async def policies(request: web.Request, handler: AioHandler) -> web.StreamResponse:
        limiters = rl_cache.get()
        compartment = bh_cache.get()
        rules = f_cache.get()
        if not (limiters or compartment is not None or rules):
            return await handler(request)

        def view() -> RequestView:
            return request_view(served, request)

        applies = view_applies(view)  # one view per request, built if a rule needs it
        if limiters:
            limits.admit(limiters, applies, source(request))
        entered = compartment is not None and bulkheads.enter(compartment, applies)
        try:
            plan = faults.decide(rules, applies) if rules else None
            if plan is not None:
                if plan.delay > 0:
                    faults.delayed(plan)
                    await sleep(plan.delay)
                if plan.status is not None:
                    raise faults.abort(plan.rule, plan.status)
            return await handler(request)
        finally:
            if entered and compartment is not None:
                compartment.leave()

    return policies


def _assemble(layers: list[Layer], innermost: Send) -> Send:
    send = innermost
    for layer in reversed(layers):
        send = layer(send)
    return send
