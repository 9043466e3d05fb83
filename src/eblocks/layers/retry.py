"""Retry: try a failed call again, only when that cannot duplicate an effect.

A call is retried when it carries an idempotency key (every mesh hop does) and
the failure is transient: the endpoint could not be reached, no endpoint was
ready, the try outlived its per-try deadline, or the answer was one of the
policy's statuses (502/503/504 by default). Backoff is exponential with full
jitter, capped, and never sleeps past the call's deadline. Each try goes back
through the balancer, so it lands on another endpoint when there is one.

The policy is the matched route's ``retries`` when it has some, else the
target block's. With a retry budget (`eblocks.layers.budget`), every call
counts as a first try and a retry must fit in the budget: past it the failure
is raised as it is, with ``detail["retry_budget"] = "exhausted"``, and
``on_refused`` is told (a metric).

Retries are made at one layer only. A layer that retries and then gives up on
an answer (an upstream's error, a timeout: work may have been done) marks the
failure ``detail["retried"] = <tries>``, which travels in the error's body to
every caller above; no retrying layer tries a marked failure again — this
one, a pattern's manager or divider, ``eblocks submit`` (`already_retried`).
Without the mark, each hop would multiply the tries of the hops below it
(3 tries at the entry, 2 at a manager, 8 in submit: 48 runs of one bad task).
A failure that reached no handler (no endpoint, a refused connection, an
open circuit; here or at a hop below) is not marked: trying it again costs
nobody work, and a restarting block is ridden out (docs/decisions.md, D71).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from eblocks._types import Call, Clock, Layer, Send
from eblocks.errors import (
    CircuitOpenError,
    ConnectError,
    MeshError,
    MeshTimeoutError,
    NoEndpointsError,
    UpstreamError,
)
from eblocks.layers.budget import Budget
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.spec.models import RetryPolicy

__all__ = ["RETRIED", "already_retried", "backoff_delay", "gave_up", "is_retryable", "retry"]

RETRIED = "retried"
"""The detail key of a failure some layer already retried: how many tries it made."""


def already_retried(exc: MeshError) -> bool:
    """Whether a layer below already retried this failure (nobody tries it again)."""
    return bool(exc.detail.get(RETRIED))


_UNREACHED = frozenset({ConnectError.reason, NoEndpointsError.reason, CircuitOpenError.reason})
"""Reasons of failures that reached no handler, at this hop or one below (never marked)."""


def gave_up(exc: MeshError, tries: int) -> None:
    """Mark ``exc`` retried after ``tries`` tries, if it is an answer (work may have been done).

    A timeout, or an upstream's error other than one saying that it, or a hop
    below it, reached nobody (`_UNREACHED`: a restarting block is ridden out
    by the layers above). A failure already marked keeps the larger count.
    """
    if isinstance(exc, MeshTimeoutError) or (
        isinstance(exc, UpstreamError) and exc.upstream_reason not in _UNREACHED
    ):
        exc.detail[RETRIED] = max(tries, int(exc.detail.get(RETRIED) or 0))


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether a failure is transient under ``policy`` and nobody retried it yet (pure)."""
    if isinstance(exc, MeshError) and exc.detail.get(RETRIED):
        return False
    if isinstance(exc, ConnectError | NoEndpointsError):
        return True
    if isinstance(exc, MeshTimeoutError):
        return exc.detail.get("per_try") is True  # one slow try, not the call's deadline
    return isinstance(exc, UpstreamError) and exc.upstream_status in policy.on


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full-jitter exponential backoff before try ``attempt + 1`` (pure given rng)."""
    ceiling = min(policy.max_backoff, policy.backoff * (2 ** (attempt - 1)))
    return rng.uniform(0, ceiling)


def retry(
    default: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    budget: Callable[[], Budget | None] | None = None,
    on_refused: Callable[[], None] | None = None,
) -> Layer:
    """Retries under ``default`` (or the call's route's); ``budget()`` is the budget in force."""

    def layer(inner: Send) -> Send:
        async def send(call: Call) -> Message:
            route = call.route
            policy = default if route is None or route.retries is None else route.retries
            window = budget() if budget is not None else None
            if window is not None:
                window.first()
            if policy.attempts == 1 or IDEMPOTENCY_HEADER not in call.message.headers:
                return await inner(call)
            attempt, tried = 1, call if call.attempt == 1 else call.with_attempt(1)
            while True:
                try:
                    return await inner(tried)
                except MeshError as exc:
                    if not is_retryable(exc, policy):
                        raise
                    if attempt >= policy.attempts:
                        gave_up(exc, attempt)
                        raise
                    delay = backoff_delay(attempt, policy, rng)
                    if call.deadline is not None and clock.monotonic() + delay >= call.deadline:
                        gave_up(exc, attempt)
                        raise
                    if window is not None and not window.try_retry():
                        exc.detail["retry_budget"] = "exhausted"
                        gave_up(exc, attempt)
                        if on_refused is not None:
                            on_refused()
                        raise
                    await clock.sleep(delay)
                    attempt += 1
                    tried = call.with_attempt(attempt)

        return send

    return layer
