"""The one place the order of layers is decided.

Outbound, outermost first (DESIGN.md; later layers slot into this list)::

    telemetry -> route (incl. mirror) -> deadline -> retry -> balancer (the target's
      `balancer`) -> tries -> token -> transport

The route layer (`eblocks.layers.route`) is there when the client gives a
`Routing` (a `MeshClient` always does): a matched call goes on down this
stack (the target, maybe a labelled subset), into another block's whole stack
with ``Call.route`` set (so not routed again), or to a pattern; a route's
mirror copies run in tasks of their own through the mirror block's stack.

To one endpoint chosen by a pattern's manager (its own balancer and retries)::

    telemetry -> deadline (the worker's timeout: one try) -> tries -> token -> transport

The telemetry layers (`eblocks.layers.telemetry`) are there when the client
has a `Telemetry` (a block's client; the CLI's has none). The token layer
(per-hop request JWT, `eblocks.security`) is there when the mesh's
``security.tokens.mode`` is not ``off``; it signs once per try.

Inbound, outermost first::

    deadline (from x-eblocks-timeout-ms) -> role dispatch -> PM

Adding a concern is one module in `eblocks.layers` plus one line here.
"""

from __future__ import annotations

import random

from eblocks._types import Clock, Layer, Resolver, Send
from eblocks.balance import make_balancer
from eblocks.block.inbound import Handle, InboundLayer, inbound_deadline
from eblocks.layers import balance, deadline, retry
from eblocks.layers.route import Routing, route
from eblocks.layers.telemetry import telemetry as observe
from eblocks.layers.telemetry import tries
from eblocks.spec.models import BlockSettings
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
) -> Send:
    """The outbound `Send` for calls to the block ``target``."""
    layers: list[Layer] = [
        deadline(target.timeout, clock),
        retry(target.retries, clock, rng),
        balance(resolver, make_balancer(target.balancer, rng=rng, clock=clock)),
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
