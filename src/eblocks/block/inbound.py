"""Inbound layers: the same shape as the client stack's, over (Message, Context).

`inbound_deadline` honours the deadline a caller propagated in
``x-eblocks-timeout-ms`` (`Context.deadline`): a request that arrives after it
is refused, and a handler still running when it passes is cancelled — its
task gets `asyncio.CancelledError` at its next ``await``, so its outbound
calls, sleeps and writes stop — and the request fails with ``timeout``. The
timers are shared as in the client's deadline layer (`eblocks.layers.deadline.Watch`).
A synchronous handler runs in the block's thread pool, where it cannot be
interrupted: its result is discarded, but the thread finishes its work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from eblocks._types import Clock
from eblocks.errors import MeshTimeoutError
from eblocks.layers.deadline import Watch
from eblocks.message import Message

if TYPE_CHECKING:
    from eblocks.block.context import Context
    from eblocks.security.auth import Peer

__all__ = ["PEER", "Handle", "InboundLayer", "inbound_deadline"]

PEER: web.RequestKey[Peer | None] = web.RequestKey("eblocks.peer")
"""Where a block keeps the caller `Auth.admit` verified, in the aiohttp request (an app block,
a gateway, a sidecar's proxy read it there); None when the block has no admission."""

Handle = Callable[[Message, "Context"], Awaitable[Message]]


class InboundLayer(Protocol):
    def __call__(self, inner: Handle, /) -> Handle: ...


def inbound_deadline(clock: Clock) -> InboundLayer:
    """Refuse work whose propagated deadline has passed; cancel it when it passes."""
    watch = Watch()

    def layer(inner: Handle) -> Handle:
        async def handle(msg: Message, ctx: Context) -> Message:
            deadline = ctx.deadline
            if deadline is None:
                return await inner(msg, ctx)
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise MeshTimeoutError("the request's deadline passed before it was handled")
            entry = watch.add(remaining)
            try:
                return await inner(msg, ctx)
            except asyncio.CancelledError as exc:
                if entry.close():
                    raise MeshTimeoutError(
                        f"the request's deadline ({remaining:.3f}s) passed while it was "
                        "handled: its work was cancelled",
                        detail={"cancelled": True},
                    ) from exc
                raise
            finally:
                entry.close()

        return handle

    return layer
