"""Balance: choose the endpoint of a call from the resolver's current view."""

from __future__ import annotations

import dataclasses

from eblocks._types import Call, Layer, Resolver, Send
from eblocks.balance import Balancer
from eblocks.errors import NoEndpointsError
from eblocks.message import Message

__all__ = ["balance"]


def balance(resolver: Resolver, balancer: Balancer) -> Layer:
    def layer(inner: Send) -> Send:
        async def send(call: Call) -> Message:
            endpoints = resolver.endpoints(call.target)
            if not endpoints:
                raise NoEndpointsError(
                    f"no ready instance of block {call.target!r}", detail={"target": call.target}
                )
            endpoint = balancer.pick(endpoints)
            return await inner(dataclasses.replace(call, endpoint=endpoint))

        return send

    return layer
