"""Balance: choose the endpoint of each try from the resolver's current view.

The balancer picks among the target's ready endpoints with a key: the
message's ``x-eblocks-hash-key`` header, else its idempotency key, so the
consistent-hash balancers keep one document on one endpoint across tries and
hops (the others ignore the key). A balancer that is also `Feedback` hears of
every try: ``begin`` with the request's body size before it is sent, ``end``
exactly once after it, with ``ok=False`` when the endpoint failed it (see
`endpoint_failed`). A try cancelled from outside (a deadline) ends with
``ok=True``: it is not the endpoint's failure, and its latency so far still
counts.
"""

from __future__ import annotations

from eblocks._types import Call, Layer, Resolver, Send
from eblocks.balance import Balancer, Feedback
from eblocks.errors import MeshError, NoEndpointsError, UpstreamError
from eblocks.message import HASH_KEY_HEADER, IDEMPOTENCY_HEADER, Message

__all__ = ["balance", "endpoint_failed", "hash_key"]


def hash_key(message: Message) -> str | None:
    """The key consistent-hash balancers route ``message`` on, if it has one."""
    headers = message.headers
    return headers.get(HASH_KEY_HEADER) or headers.get(IDEMPOTENCY_HEADER)


def endpoint_failed(exc: BaseException) -> bool:
    """Whether a try that raised ``exc`` counts against its endpoint.

    A mesh error does (no connection, a timeout, a 5xx answer), except an
    answer below 500: the endpoint worked, the request was wrong.
    """
    if isinstance(exc, UpstreamError):
        return exc.upstream_status >= 500
    return isinstance(exc, MeshError)


def balance(resolver: Resolver, balancer: Balancer) -> Layer:
    feedback = balancer if isinstance(balancer, Feedback) else None

    def layer(inner: Send) -> Send:
        async def send(call: Call) -> Message:
            endpoints = resolver.endpoints(call.target)
            if not endpoints:
                raise NoEndpointsError(
                    f"no ready instance of block {call.target!r}", detail={"target": call.target}
                )
            endpoint = balancer.pick(endpoints, hash_key(call.message))
            if feedback is None:
                return await inner(call.with_endpoint(endpoint))
            ticket = feedback.begin(endpoint, len(call.message.body))
            try:
                reply = await inner(call.with_endpoint(endpoint))
            except BaseException as exc:  # cancellation too: the ticket must always end
                feedback.end(ticket, ok=not endpoint_failed(exc))
                raise
            feedback.end(ticket, ok=True)
            return reply

        return send

    return layer
