"""Role dispatch: what an instance does with a message, by the pattern it is in.

A message tagged with (pattern, stage) makes this instance that stage's
*filter*: the PM handles it, then the output walks on from the next stage.
An untagged message is a direct call: the PM's output is the reply.
"""

from __future__ import annotations

from eblocks.block.context import Context
from eblocks.block.inbound import Handle
from eblocks.message import PATTERN_HEADER, STAGE_HEADER, Message
from eblocks.patterns import Plan

__all__ = ["dispatch"]


def dispatch(block: str, plan: Plan, pm: Handle) -> Handle:
    async def handle(msg: Message, ctx: Context) -> Message:
        pattern = msg.headers.get(PATTERN_HEADER)
        if pattern is None:
            return await pm(msg, ctx)
        index = plan.locate(pattern, msg.headers.get(STAGE_HEADER, ""), block)
        ctx.pattern, ctx.stage = pattern, index
        out = await pm(msg.without(PATTERN_HEADER, STAGE_HEADER), ctx)
        return await ctx.forward(pattern, index + 1, out)

    return handle
