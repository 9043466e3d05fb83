"""The divider role of a divide-conquer pattern: split, fan out, combine in order.

The contract with the user's handlers:

- The **divider**'s handler returns the parts as a list (a JSON array). Part
  ``i`` is element ``i``, sent to the worker as JSON (``application/json``),
  with the idempotency key ``<key>/<i>`` and ``x-eblocks-part: <i>/<count>``.
- The **worker** (a block, or a pattern such as a pipeline) handles one part.
- The **combiner** receives one JSON array (``application/json``) whose
  element ``i`` is part ``i``'s reply: decoded JSON when the reply is JSON,
  else its body as text. Its output is the pattern's output.

At most ``parallel`` parts of one message are in flight. A part that fails
transiently (see `is_transient`) is tried again, up to ``attempts`` tries,
unless the call's own stack retried it already (its target's ``retries``:
retries are made at one layer only, `eblocks.layers.retry`); then the whole
message fails with the part's own reason and origin, and an
error that names the part (``detail.part``). The other parts are cancelled.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import orjson

from eblocks._types import Clock
from eblocks.block.context import Context
from eblocks.block.inbound import Handle
from eblocks.errors import HandlerError, MeshError, UpstreamError
from eblocks.layers.retry import RETRIED, backoff_delay, gave_up
from eblocks.message import IDEMPOTENCY_HEADER, PART_HEADER, Message
from eblocks.spec.models import DivideConquer, RetryPolicy
from eblocks.workload.manager import is_transient

__all__ = ["Divider", "combine_body", "split_parts"]

_JSON = "application/json"


def split_parts(out: Message, pattern: str, block: str) -> list[bytes]:
    """The divider's output as the bodies of the parts (each element as JSON)."""
    try:
        parts = orjson.loads(out.body)
    except orjson.JSONDecodeError:
        parts = _NOT_JSON
    if not isinstance(parts, list):
        raise HandlerError(
            f"divider {block!r} of pattern {pattern!r} must return a list of parts "
            f"(a JSON array), got {_what(out.body, parts)}",
            origin=block,
            detail={"pattern": pattern, "block": block},
        )
    return [orjson.dumps(part) for part in parts]


_NOT_JSON = object()
_JSON_KINDS = {dict: "a JSON object", str: "a JSON string", type(None): "null", bool: "a boolean"}


def _what(body: bytes, parts: Any) -> str:
    """What a divider returned instead of a list, in its user's words."""
    if not body:
        return "an empty reply (the handler returned None?)"
    if parts is _NOT_JSON:
        return "a reply that is not JSON"
    return _JSON_KINDS.get(type(parts), "a number")


def combine_body(replies: Sequence[Message]) -> bytes:
    """The combiner's input: the replies in part order, as one JSON array."""
    return orjson.dumps([_value(reply) for reply in replies])


def _value(reply: Message) -> Any:
    if (reply.headers.get("content-type") or "").startswith(_JSON):
        return orjson.loads(reply.body)
    return reply.body.decode("utf-8", errors="replace")


class Divider:
    """Run one divide-conquer pattern for the messages its divider block receives."""

    __slots__ = ("_backoff", "_clock", "_pm", "_rng", "name", "spec")

    def __init__(
        self,
        name: str,
        spec: DivideConquer,
        pm: Handle,
        *,
        backoff: RetryPolicy,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.spec = spec
        self._pm = pm
        self._backoff = backoff
        self._clock = clock
        self._rng = rng

    async def handle(self, msg: Message, ctx: Context) -> Message:
        parts = split_parts(await self._pm(msg, ctx), self.name, ctx.block)
        key = ctx.idempotency_key or ctx.request_id
        gate = asyncio.Semaphore(self.spec.parallel)

        async def one(index: int, body: bytes) -> Message:
            async with gate:
                return await self._part(index, len(parts), body, key, ctx)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, body)) for i, body in enumerate(parts)]
        except* MeshError as failed:
            raise _first(failed) from None
        replies = [task.result() for task in tasks]
        combined = Message(combine_body(replies), {"content-type": _JSON, IDEMPOTENCY_HEADER: key})
        return await ctx.call(self.spec.combine, combined)

    async def _part(self, index: int, count: int, body: bytes, key: str, ctx: Context) -> Message:
        headers = {
            "content-type": _JSON,
            IDEMPOTENCY_HEADER: f"{key}/{index}",
            PART_HEADER: f"{index}/{count}",
        }
        attempt, tries = 1, 0
        while True:
            try:
                return await ctx.call(self.spec.worker, Message(body, headers))
            except MeshError as exc:
                tries += int(exc.detail.get(RETRIED) or 1)  # with the worker stack's own retries
                transient = is_transient(exc)  # not when the stack retried it already
                retry = attempt < self.spec.attempts and transient
                delay = backoff_delay(attempt, self._backoff, self._rng) if retry else 0.0
                late = ctx.deadline is not None and self._clock.monotonic() + delay >= ctx.deadline
                if not retry or late:
                    named = _naming_part(exc, self.name, index, count, tries)
                    if transient or tries > 1:
                        gave_up(named, tries)  # nobody above tries this part's message again
                    raise named from exc
                await self._clock.sleep(delay)
                attempt += 1


def _naming_part(exc: MeshError, pattern: str, index: int, count: int, tries: int) -> UpstreamError:
    """The part's failure, its reason and origin kept, with the part named."""
    if isinstance(exc, UpstreamError):
        status, reason, retry_after = exc.upstream_status, exc.upstream_reason, exc.retry_after
    else:
        status, reason, retry_after = exc.status, exc.reason, exc.detail.get("retry_after")
    return UpstreamError(
        f"part {index} of {count} of pattern {pattern!r} failed after {tries} "
        f"tr{'y' if tries == 1 else 'ies'}: {exc.message}",
        status=status,
        reason=reason,
        origin=exc.origin,
        detail={**exc.detail, "pattern": pattern, "part": index, "parts": count},
        retry_after=retry_after,
    )


def _first(group: BaseExceptionGroup[MeshError]) -> MeshError:
    """The failure of the lowest-numbered part among those that failed together."""
    failures = [e for e in _leaves(group) if isinstance(e, MeshError)]
    return min(failures, key=lambda e: int(e.detail.get("part", 0)))


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
