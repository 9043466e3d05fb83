"""Limits: at most ``max_pending`` tries in flight from this caller to one target.

The bound is the target's ``limits.max_pending`` in the policies in force
(`ConnectionLimits`), looked up again when the version changes (each try
compares versions by identity); past it the try fails at once with
`OverloadedError` (``overloaded``, 503) — nothing waits in a queue. It sits
below the retry layer, so it bounds tries; a refused try is not retried (an
overloaded answer is not a transient failure of one endpoint).
``max_connections`` is not a layer: the client's transport lets the target's
calls hold at most that many connections at once (`eblocks.transport.http`).
"""

from __future__ import annotations

from collections.abc import Awaitable

from eblocks._types import Call, Layer, Send
from eblocks.errors import OverloadedError
from eblocks.message import Message
from eblocks.policies import LivePolicies, PolicyState

__all__ = ["Pending", "limits"]


class Pending:
    """The count of one target's tries in flight (read by the layer and by tests)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def limits(live: LivePolicies, target: str, pending: Pending | None = None) -> Layer:
    inflight = pending or Pending()
    seen: PolicyState | None = None  # the version `most` was read from
    most: int | None = None

    def layer(inner: Send) -> Send:
        def send(call: Call) -> Awaitable[Message]:
            # a plain function: without a bound, no frame and no count (a bound
            # set later counts the tries that start after it)
            nonlocal seen, most
            state = live.current
            if state is not seen:
                bound = state.block(target).limits
                seen, most = state, bound.max_pending if bound is not None else None
            if most is None:
                return inner(call)
            return counted(call, most)

        async def counted(call: Call, most: int) -> Message:
            if inflight.count >= most:
                raise OverloadedError(
                    f"{most} requests to {target!r} are pending already (limits.max_pending)",
                    detail={"target": target, "max_pending": most},
                )
            inflight.count += 1
            try:
                return await inner(call)
            finally:
                inflight.count -= 1

        return send

    return layer
