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

A call with a ``subset`` (set by the route layer) is balanced over the
endpoints whose labels include it; none ready there is `NoEndpointsError`
naming the target and the subset.

With ``guard`` (outlier detection: `eblocks.layers.outlier.Detectors.current`),
``guard()`` gives the `Guard` in force, if any: the balancer picks only among
the endpoints it admits, and it hears each try's outcome: ``True``/``False``
as `endpoint_failed` says, ``None`` when the try was cancelled from outside.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from eblocks._types import Call, Endpoint, Layer, Resolver, Send
from eblocks.balance import Balancer, Feedback
from eblocks.errors import MeshError, NoEndpointsError, UpstreamError
from eblocks.message import HASH_KEY_HEADER, IDEMPOTENCY_HEADER, Message

__all__ = ["Guard", "balance", "endpoint_failed", "hash_key", "in_subset"]


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


def in_subset(endpoints: Sequence[Endpoint], subset: Mapping[str, str]) -> Sequence[Endpoint]:
    """The endpoints whose labels include every label of ``subset``."""
    wanted = subset.items()
    return tuple(ep for ep in endpoints if wanted <= ep.labels.items())


def _no_endpoints(call: Call) -> NoEndpointsError:
    if call.subset is None:
        return NoEndpointsError(
            f"no ready instance of block {call.target!r}", detail={"target": call.target}
        )
    labels = ",".join(f"{k}={v}" for k, v in sorted(call.subset.items()))
    return NoEndpointsError(
        f"no ready instance of block {call.target!r} in subset {labels}",
        detail={"target": call.target, "subset": dict(call.subset)},
    )


class Guard(Protocol):
    """Keeps failing endpoints out of the pick (may raise, e.g. `CircuitOpenError`)."""

    def admit(self, endpoints: Sequence[Endpoint]) -> Sequence[Endpoint]: ...

    def outcome(self, endpoint: Endpoint, ok: bool | None) -> None: ...


def balance(
    resolver: Resolver, balancer: Balancer, guard: Callable[[], Guard | None] | None = None
) -> Layer:
    feedback = balancer if isinstance(balancer, Feedback) else None

    def layer(inner: Send) -> Send:
        def send(call: Call) -> Awaitable[Message]:
            # a plain function: no frame of its own (a refusal is raised when it is
            # called, inside the caller's `await inner(call)`)
            endpoints = resolver.endpoints(call.target)
            if call.subset is not None:
                endpoints = in_subset(endpoints, call.subset)
            if not endpoints:
                raise _no_endpoints(call)
            current = guard() if guard is not None else None
            if current is not None:
                return guarded(call, current, current.admit(endpoints))
            return one(call, balancer.pick(endpoints, hash_key(call.message)))

        def one(call: Call, endpoint: Endpoint) -> Awaitable[Message]:
            # a plain function: no frame of its own without feedback
            if feedback is None:
                return inner(call.with_endpoint(endpoint))
            return fed(call, endpoint, feedback)

        async def fed(call: Call, endpoint: Endpoint, feedback: Feedback) -> Message:
            ticket = feedback.begin(endpoint, len(call.message.body))
            try:
                reply = await inner(call.with_endpoint(endpoint))
            except BaseException as exc:  # cancellation too: the ticket must always end
                feedback.end(ticket, ok=not endpoint_failed(exc))
                raise
            feedback.end(ticket, ok=True)
            return reply

        async def guarded(call: Call, guard: Guard, endpoints: Sequence[Endpoint]) -> Message:
            endpoint = balancer.pick(endpoints, hash_key(call.message))
            try:
                reply = await one(call, endpoint)
            except MeshError as exc:
                guard.outcome(endpoint, not endpoint_failed(exc))
                raise
            except BaseException:  # cancelled from outside: no verdict on the endpoint
                guard.outcome(endpoint, None)
                raise
            guard.outcome(endpoint, True)
            return reply

        return send

    return layer
