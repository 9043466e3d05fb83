"""Inbound layers: the same shape as the client stack's, over (Message, Context)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from eblocks._types import Clock
from eblocks.errors import MeshTimeoutError
from eblocks.message import Message

if TYPE_CHECKING:
    from eblocks.block.context import Context

__all__ = ["Handle", "InboundLayer", "inbound_deadline"]

Handle = Callable[[Message, "Context"], Awaitable[Message]]


class InboundLayer(Protocol):
    def __call__(self, inner: Handle, /) -> Handle: ...


def inbound_deadline(clock: Clock) -> InboundLayer:
    """Refuse work whose propagated deadline has already passed."""

    def layer(inner: Handle) -> Handle:
        async def handle(msg: Message, ctx: Context) -> Message:
            if ctx.deadline is not None and ctx.deadline <= clock.monotonic():
                raise MeshTimeoutError("the request's deadline passed before it was handled")
            return await inner(msg, ctx)

        return handle

    return layer
