"""CPU cost of the policy layers, in process (part of ``bench overhead --policies``).

On a shared machine the side-by-side req/s and p50 of ``--policies`` move by
more than the layers cost; CPU time per call of a stack alone, with no
sockets, moves much less. Each side's variants are interleaved in every
round (each runs first in turn), after a warm-up; the figures are medians
over rounds, and the added cost the median of the per-round differences.

Inbound (`inbound_cost`): the same `server_stack` over an echo handler,

- ``no layers``: the stack before the policy layers existed (deadline only);
- ``no rules``: rate limit, bulkhead and fault layers over empty policies
  (what every block without policies pays);
- ``every rule``: `POLICIES_SPEC` (a per-source rate limit with an override,
  a bulkhead, a fault rule matching a header nobody sends).

Client (`client_cost`): a `MeshClient` calling ``echo`` through its whole
stack (telemetry, route, deadline, retry, limits, balancer, per-try
deadline), as the benchmark's client does: 32 calls at a time, with a
metrics `Telemetry`, over a transport that answers on the next turn of the
event loop (a call suspends once, as it does on a socket, so each layer's
frame is suspended and resumed as it is over the network),

- ``no policies``: the spec of `POLICIES_SPEC` with empty policies;
- ``every rule``: with its policies (a route matching every call with one
  destination, a mirror at 0 %, timeout, per-try timeout and retries; a
  retry budget, outlier detection and limits).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from eblocks._types import Call, SystemClock
from eblocks.bench.servers import POLICIES_SPEC
from eblocks.bench.telemetry import side_telemetry
from eblocks.block.client import MeshClient
from eblocks.block.context import Context
from eblocks.block.stack import Admission, server_stack
from eblocks.message import IDEMPOTENCY_HEADER, SOURCE_HEADER, Message
from eblocks.policies import LivePolicies
from eblocks.spec import parse_spec
from eblocks.spec.policies import Policies
from eblocks.testing import StaticResolver
from eblocks.transport import HttpTransport

__all__ = ["CLIENT_VARIANTS", "VARIANTS", "bench_client", "client_cost", "inbound_cost"]

VARIANTS = ("no layers", "no rules", "every rule")
"""The inbound variants; the first is the base the others are compared with."""
CLIENT_VARIANTS = ("no policies", "every rule")
"""The client variants; the first is the base."""

Progress = Callable[[str], None]
Side = Callable[[], Awaitable[object]]


async def _echo(msg: Message, _ctx: Context) -> Message:
    return msg


def _inbound_sides() -> dict[str, Side]:
    clock = SystemClock()
    every = LivePolicies.of(parse_spec(POLICIES_SPEC, "<bench policies>").policies)
    empty = LivePolicies.of(Policies())
    stacks = {
        "no layers": server_stack(_echo, clock),
        "no rules": server_stack(_echo, clock, Admission.of(empty, "echo", clock, random.Random())),
        "every rule": server_stack(
            _echo, clock, Admission.of(every, "echo", clock, random.Random())
        ),
    }
    msg = Message(b"x" * 64, {SOURCE_HEADER: "bench"})

    def side(handle: Callable[[Message, Context], Awaitable[Message]]) -> Side:
        return lambda: handle(msg, Context(block="echo", instance="echo-0", request_id="r"))

    return {name: side(stacks[name]) for name in VARIANTS}


async def inbound_cost(
    calls: int = 20_000, rounds: int = 5, progress: Progress | None = None
) -> dict[str, Any]:
    """CPU µs per call of each inbound variant (medians), and what each adds to ``no layers``."""
    return await _cost(_inbound_sides(), calls, rounds, progress, "inbound policy layers")


class _Answer(HttpTransport):
    """A transport that answers every call with its body on the next loop turn: no socket."""

    async def send(self, call: Call) -> Message:
        await asyncio.sleep(0)
        return Message(call.message.body)


def bench_client(policies: bool) -> MeshClient:
    """The benchmark's client of ``echo`` (`POLICIES_SPEC`'s policies, or none), in process."""
    spec = parse_spec(POLICIES_SPEC, "<bench policies>")
    return MeshClient(
        spec,
        StaticResolver({"echo": ["127.0.0.1:1"]}),
        source="bench",
        transport=_Answer(),
        telemetry=side_telemetry("policies", "bench", "bench-0"),
        policies=LivePolicies.of(spec.policies if policies else Policies()),
    )


async def client_cost(
    calls: int = 20_000,
    rounds: int = 5,
    progress: Progress | None = None,
    concurrency: int = 32,
) -> dict[str, Any]:
    """CPU µs per call of each client variant (medians), and what ``every rule`` adds."""
    if concurrency < 1 or calls % concurrency:
        raise ValueError(f"calls ({calls}) must be a multiple of concurrency ({concurrency})")
    clients = {name: bench_client(name == "every rule") for name in CLIENT_VARIANTS}
    # an idempotency key, as the benchmark's client sends, so the retry layer is armed
    msg = Message(b"x" * 64, {IDEMPOTENCY_HEADER: "k"})

    def side(client: MeshClient) -> Side:
        async def caller() -> None:
            for _ in range(calls // concurrency):
                await client.call("echo", msg)

        async def batch() -> None:  # ``calls`` calls, ``concurrency`` at a time
            await asyncio.gather(*(caller() for _ in range(concurrency)))

        return batch

    try:
        sides = {name: side(client) for name, client in clients.items()}
        return await _cost(sides, calls, rounds, progress, "client policy layers", batched=True)
    finally:
        for client in clients.values():
            await client.aclose()
            if client.telemetry is not None:
                await client.telemetry.aclose()


async def _cost(
    sides: Mapping[str, Side],
    calls: int,
    rounds: int,
    progress: Progress | None,
    what: str,
    batched: bool = False,
) -> dict[str, Any]:
    """Time ``sides`` (the first is the base), interleaved round by round.

    A side makes one call, or with ``batched`` all ``calls`` of a round.
    """
    if calls < 1 or rounds < 1:
        raise ValueError(f"calls and rounds must be >= 1, got {calls} and {rounds}")
    progress = progress or (lambda _: None)
    names = list(sides)
    repeat = 1 if batched else calls
    for side in sides.values():  # warm-up: caches, compiled rules, first buckets
        for _ in range(1 if batched else min(calls, 1000)):
            await side()
    per_call: dict[str, list[float]] = {name: [] for name in names}
    for rnd in range(rounds):
        progress(f"{what}, round {rnd + 1}/{rounds}")
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            side = sides[name]
            began = time.process_time()
            for _ in range(repeat):
                await side()
            per_call[name].append((time.process_time() - began) / calls * 1e6)
    base = per_call[names[0]]
    return {
        "calls": calls,
        "rounds": rounds,
        "us_per_call": {name: statistics.median(values) for name, values in per_call.items()},
        "added_us": {
            name: statistics.median(v - b for v, b in zip(per_call[name], base, strict=True))
            for name in names[1:]
        },
        "rounds_us": per_call,
    }
