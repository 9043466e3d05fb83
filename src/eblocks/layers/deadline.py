"""Deadline: bound a whole call (every try) by the target's timeout.

The call's deadline becomes ``min(inherited deadline, now + timeout)``; a call
whose deadline has passed fails at once with ``timeout`` and never reaches the
network. Inner layers see ``Call.deadline`` and the transport propagates the
remaining time downstream in ``x-eblocks-timeout-ms``.
"""

from __future__ import annotations

import asyncio
import dataclasses

from eblocks._types import Call, Clock, Layer, Send
from eblocks.errors import MeshTimeoutError
from eblocks.message import Message

__all__ = ["deadline"]


def deadline(timeout: float, clock: Clock) -> Layer:
    def layer(inner: Send) -> Send:
        async def send(call: Call) -> Message:
            now = clock.monotonic()
            limit = now + timeout
            if call.deadline is not None:
                limit = min(limit, call.deadline)
            remaining = limit - now
            if remaining <= 0:
                raise MeshTimeoutError(f"deadline passed before calling {call.target!r}")
            try:
                async with asyncio.timeout(remaining):
                    return await inner(dataclasses.replace(call, deadline=limit))
            except TimeoutError as exc:
                if isinstance(exc, MeshTimeoutError):
                    raise
                raise MeshTimeoutError(
                    f"no answer from {call.target!r} within {remaining:.3f}s",
                    detail={"target": call.target},
                ) from exc

        return send

    return layer
