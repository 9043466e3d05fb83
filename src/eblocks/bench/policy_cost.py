"""CPU cost of a block's inbound policy layers, in process (part of ``bench overhead --policies``).

On a shared machine the side-by-side req/s and p50 of ``--policies`` move by
more than the layers cost; CPU time per call of the inbound stack alone, with
no sockets, moves much less. Three variants of the same `server_stack` over an
echo handler, interleaved in each round, medians over rounds:

- ``no layers``: the stack before the policy layers existed (deadline only);
- ``no rules``: rate limit, bulkhead and fault layers over empty policies
  (what every block without policies pays);
- ``every rule``: `POLICIES_SPEC` (a per-source rate limit with an override,
  a bulkhead, a fault rule matching a header nobody sends).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from eblocks._types import SystemClock
from eblocks.bench.servers import POLICIES_SPEC
from eblocks.block.context import Context
from eblocks.block.inbound import Handle
from eblocks.block.stack import Admission, server_stack
from eblocks.message import SOURCE_HEADER, Message
from eblocks.policies import LivePolicies
from eblocks.spec import parse_spec
from eblocks.spec.policies import Policies

__all__ = ["VARIANTS", "inbound_cost"]

VARIANTS = ("no layers", "no rules", "every rule")


async def _echo(msg: Message, _ctx: Context) -> Message:
    return msg


def _stacks() -> dict[str, Handle]:
    clock = SystemClock()
    every = LivePolicies.of(parse_spec(POLICIES_SPEC, "<bench policies>").policies)
    empty = LivePolicies.of(Policies())
    return {
        "no layers": server_stack(_echo, clock),
        "no rules": server_stack(_echo, clock, Admission.of(empty, "echo", clock, random.Random())),
        "every rule": server_stack(
            _echo, clock, Admission.of(every, "echo", clock, random.Random())
        ),
    }


async def inbound_cost(
    calls: int = 20_000, rounds: int = 5, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """CPU µs per call of each variant (medians), and what the layers add to ``no layers``."""
    if calls < 1 or rounds < 1:
        raise ValueError(f"calls and rounds must be >= 1, got {calls} and {rounds}")
    progress = progress or (lambda _: None)
    stacks = _stacks()
    msg = Message(b"x" * 64, {SOURCE_HEADER: "bench"})
    per_call: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for rnd in range(rounds):
        progress(f"inbound policy layers, round {rnd + 1}/{rounds}")
        order = VARIANTS[rnd % 3 :] + VARIANTS[: rnd % 3]
        for name in order:
            handle = stacks[name]
            ctx = Context(block="echo", instance="echo-0", request_id="r")
            began = time.process_time()
            for _ in range(calls):
                await handle(msg, ctx)
            per_call[name].append((time.process_time() - began) / calls * 1e6)
    medians = {name: statistics.median(values) for name, values in per_call.items()}
    return {
        "calls": calls,
        "rounds": rounds,
        "us_per_call": medians,
        "added_us": {
            "no rules": medians["no rules"] - medians["no layers"],
            "every rule": medians["every rule"] - medians["no layers"],
        },
        "rounds_us": per_call,
    }
