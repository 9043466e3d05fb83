"""Bulkhead and load shedding: at most ``max_concurrent`` matching requests in the handler.

A `Compartment` counts the matching requests being handled; one more than
its limit is refused at once with `OverloadedError` (503 ``overloaded``,
``detail.bulkhead`` naming it) — never queued, so a slow handler cannot
build an unbounded backlog in front of itself::

    request --matches--> count < limit ? count += 1 -> handler -> count -= 1
                                        : 503 overloaded (nothing waits)

The count belongs to the requests, not to the number in the rule: a new
policy version that keeps the bulkhead's ``match`` keeps its compartment
(the requests inside stay counted) and only changes its limit, so lowering
the limit sheds new requests until the count is under it, and nothing is
ever counted twice or forgotten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from eblocks.block.inbound import Handle, InboundLayer
from eblocks.errors import OverloadedError
from eblocks.message import Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.inbound import PerVersion, rule_keys
from eblocks.policies.match import (
    Applies,
    Matcher,
    MessageMatcher,
    compile_match,
    compile_message_match,
    match_all,
    message_applies,
)
from eblocks.spec.policies import Bulkhead

if TYPE_CHECKING:
    from eblocks.block.context import Context

__all__ = ["Bulkheads", "Compartment", "bulkhead"]

OnDeny = Callable[[str, str], None]
NAME = "bulkhead"


class Compartment:
    """The requests a bulkhead counts: ``inside`` of at most ``limit``."""

    __slots__ = ("inside", "key", "limit", "matches", "matches_message", "name")

    def __init__(self, rule: Bulkhead, key: str) -> None:
        self.key = key
        self.limit = rule.max_concurrent
        self.matches: Matcher = compile_match(rule.match)
        self.matches_message: MessageMatcher = compile_message_match(rule.match)
        self.inside = 0
        self.name = NAME

    def enter(self) -> bool:
        """Count one more request in, if there is room."""
        if self.inside >= self.limit:
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1


class Bulkheads:
    """The bulkhead of one block across policy versions."""

    __slots__ = ("block", "cache", "on_deny")

    def __init__(self, live: LivePolicies, block: str, *, on_deny: OnDeny | None = None) -> None:
        self.block = block
        self.on_deny = on_deny
        self.cache: PerVersion[Compartment | None] = PerVersion(live, self._build, None)

    def _build(self, state: PolicyState, previous: Compartment | None) -> Compartment | None:
        rule = state.block(self.block).bulkhead
        if rule is None:
            return None
        key = rule_keys([rule.match])[0] if rule.match is not None else "*"
        if previous is not None and previous.key == key:
            previous.limit = rule.max_concurrent
            return previous
        return Compartment(rule, key)

    def enter(self, compartment: Compartment, applies: Applies) -> bool:
        """True if the request is counted in (the caller must `leave`); False if it is
        not one the bulkhead counts; `OverloadedError` if the compartment is full."""
        if compartment.matches is not match_all and not applies(compartment):
            return False
        if compartment.enter():
            return True
        if self.on_deny is not None:
            self.on_deny(OverloadedError.reason, compartment.name)
        raise OverloadedError(
            f"{self.block!r} is handling {compartment.inside} requests, "
            f"its bulkhead's limit ({compartment.limit}); try again later",
            origin=self.block,
            detail={"bulkhead": compartment.name, "max_concurrent": compartment.limit},
        )


def bulkhead(bulkheads: Bulkheads) -> InboundLayer:
    """The inbound layer: shed what the block's bulkhead has no room for."""
    cache = bulkheads.cache

    def layer(inner: Handle) -> Handle:
        def handle(msg: Message, ctx: Context) -> Awaitable[Message]:
            # a plain function: a request the bulkhead does not count costs no frame
            compartment = cache.value if cache.state is cache.live.current else cache.refresh()
            if compartment is None or not bulkheads.enter(compartment, message_applies(msg)):
                return inner(msg, ctx)
            return counted(msg, ctx, compartment)

        async def counted(msg: Message, ctx: Context, compartment: Compartment) -> Message:
            try:
                return await inner(msg, ctx)
            finally:
                compartment.leave()

        return handle

    return layer
