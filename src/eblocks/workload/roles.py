"""Role dispatch: what an instance does with a message, by the pattern it is in.

A message tagged with (pattern, stage) gives this instance a role in that
pattern, chosen by the pattern's kind:

- a pipeline stage is a *filter*: the PM handles it, then the output walks on
  from the next stage;
- the manager of a manager-worker pattern is its *manager*: it queues the task
  and runs it on a worker (`Manager`), the PM is not involved;
- the divider of a divide-conquer pattern is its *divider*: the PM splits, the
  parts run on workers and the combiner merges them (`Divider`).

Workers and combiners receive plain calls. An untagged message is a direct
call: the PM's output is the reply. Roles with state (a manager's queue) are
built once per pattern, when the first message of that pattern arrives.
"""

from __future__ import annotations

import random

from eblocks._types import Clock, SystemClock
from eblocks.balance import make_balancer
from eblocks.block.context import Context
from eblocks.block.inbound import Handle
from eblocks.errors import BadRequestError
from eblocks.message import PATTERN_HEADER, STAGE_HEADER, Message
from eblocks.patterns import Plan
from eblocks.spec.models import DivideConquer, ManagerWorker, RetryPolicy
from eblocks.telemetry.core import Hooks
from eblocks.workload.divider import Divider
from eblocks.workload.manager import Manager, WorkerLink
from eblocks.workload.pools import Pools

__all__ = ["dispatch"]


def dispatch(
    block: str,
    plan: Plan,
    pm: Handle,
    *,
    link: WorkerLink | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    backoff: RetryPolicy | None = None,
    pools: Pools | None = None,
    hooks: Hooks | None = None,
) -> Handle:
    """The inbound `Handle` of ``block``: its roles in ``plan`` in front of its PM.

    ``link`` reaches the workers of the patterns this block manages; ``backoff``
    spaces a manager's or divider's retries (the block's own `retries`); the
    managers built are added to ``pools`` (shown on ``/v1/pools``, autoscaled);
    ``hooks`` publishes each manager's pool and queue as gauges.
    """
    clock = clock or SystemClock()
    rng = rng or random.Random()
    backoff = backoff or RetryPolicy()
    roles: dict[tuple[str, int], Handle] = {}

    def role(pattern: str, index: int) -> Handle:
        found = roles.get((pattern, index))
        if found is not None:
            return found
        spec = plan.pattern(pattern)
        if isinstance(spec, ManagerWorker):
            if link is None:
                raise BadRequestError(f"block {block!r} is outside a mesh: it manages no workers")
            balancer = make_balancer(spec.balancer, rng=rng, clock=clock)
            manager = Manager(
                pattern, spec, link, balancer=balancer, backoff=backoff, clock=clock, rng=rng
            )
            if pools is not None:
                pools.add(manager)
            found = manager.handle
            if hooks is not None:
                hooks.pool(pattern, manager.gauges)
        elif isinstance(spec, DivideConquer):
            found = Divider(pattern, spec, pm, backoff=backoff, clock=clock, rng=rng).handle
        else:
            found = _filter(pm, pattern, index)
        roles[pattern, index] = found
        return found

    async def handle(msg: Message, ctx: Context) -> Message:
        pattern = msg.headers.get(PATTERN_HEADER)
        if pattern is None:
            return await pm(msg, ctx)
        index = plan.locate(pattern, msg.headers.get(STAGE_HEADER, ""), block)
        ctx.pattern, ctx.stage = pattern, index
        return await role(pattern, index)(msg.without(PATTERN_HEADER, STAGE_HEADER), ctx)

    return handle


def _filter(pm: Handle, pattern: str, index: int) -> Handle:
    async def handle(msg: Message, ctx: Context) -> Message:
        out = await pm(msg, ctx)
        return await ctx.forward(pattern, index + 1, out)

    return handle
