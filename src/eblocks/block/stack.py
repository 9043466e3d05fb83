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
retried. The retry budget, ``limits.max_pending`` and outlier detection are
read from the live policies (`eblocks.policies`) on each request: they cost a
lookup when the target's policies set none.

To one endpoint chosen by a pattern's manager (its own balancer and retries)::

    telemetry -> deadline (the worker's timeout: one try) -> tries -> token -> transport

The telemetry layers (`eblocks.layers.telemetry`) are there when the client
has a `Telemetry` (a block's client; the CLI's has none). The token layer
(per-hop request JWT, `eblocks.security`) is there when the mesh's
``security.tokens.mode`` is not ``off``; it signs once per try.

Inbound, outermost first::

    deadline (from x-eblocks-timeout-ms; cancels the handler when it passes)
      -> role dispatch -> PM

Adding a concern is one module in `eblocks.layers` plus one line here.
"""

from __future__ import annotations

import random

from eblocks._types import Clock, Layer, Resolver, Send
from eblocks.balance import make_balancer
from eblocks.block.inbound import Handle, InboundLayer, inbound_deadline
from eblocks.layers import balance, deadline, per_try_deadline, retry
from eblocks.layers.budget import Budgets
from eblocks.layers.limits import limits
from eblocks.layers.meter import meter_of
from eblocks.layers.outlier import Detectors
from eblocks.layers.route import Routing, route
from eblocks.layers.telemetry import telemetry as observe
from eblocks.layers.telemetry import tries
from eblocks.policies import LivePolicies
from eblocks.spec.models import BlockSettings
from eblocks.spec.policies import Policies
from eblocks.telemetry.core import Telemetry

__all__ = ["client_stack", "endpoint_stack", "server_stack"]


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
    if telemetry is not None:
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
    if telemetry is not None:
        layers = [observe(telemetry, target.name), *layers, tries(telemetry, target.name)]
    if token is not None:
        layers.append(token)
    return _assemble(layers, transport)


def server_stack(pm: Handle, clock: Clock) -> Handle:
    """The inbound `Handle` in front of a block's role dispatch and handler."""
    layers: list[InboundLayer] = [inbound_deadline(clock)]
    handle = pm
    for layer in reversed(layers):
        handle = layer(handle)
    return handle


def _assemble(layers: list[Layer], innermost: Send) -> Send:
    send = innermost
    for layer in reversed(layers):
        send = layer(send)
    return send
