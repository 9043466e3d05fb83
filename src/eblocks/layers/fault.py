"""Fault injection: delay and/or abort a share of the matching requests (chaos testing).

The first fault rule whose ``match`` holds applies to a request (as a route's
fault does in Envoy); the others are not looked at. Its delay and its abort
are drawn independently from the injected `random.Random`, each with its own
``percent``: a request may be delayed, then aborted. An abort raises
`FaultInjectedError` with the rule's status (``x-eblocks-error:
fault_injected``); a delay sleeps on the injected clock, then the request goes
on. A rule with ``percent: 0`` draws nothing and changes nothing.

Faults keep no state, so a new policy version only recompiles the matchers.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eblocks._types import Clock
from eblocks.block.inbound import Handle, InboundLayer
from eblocks.errors import FaultInjectedError
from eblocks.message import Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.inbound import PerVersion
from eblocks.policies.match import (
    Applies,
    Matcher,
    MessageMatcher,
    compile_match,
    compile_message_match,
    match_all,
    message_applies,
)

if TYPE_CHECKING:
    from eblocks.block.context import Context

__all__ = ["FaultPlan", "Faults", "fault"]

OnEvent = Callable[[str, str], None]
"""Told ``(what, rule)``: ``fault_injected`` for an abort, ``fault_delayed`` for a delay."""

DELAYED = "fault_delayed"


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    matches: Matcher
    matches_message: MessageMatcher
    delay_percent: float
    delay: float
    abort_percent: float
    status: int


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What happens to one request: sleep ``delay`` seconds, then abort with ``status``."""

    rule: str
    delay: float = 0.0
    status: int | None = None


class Faults:
    """The fault rules of one block across policy versions: `decide` per request."""

    __slots__ = ("_rng", "block", "cache", "on_event")

    def __init__(
        self,
        live: LivePolicies,
        block: str,
        rng: random.Random,
        *,
        on_event: OnEvent | None = None,
    ) -> None:
        self.block = block
        self._rng = rng
        self.on_event = on_event
        self.cache: PerVersion[tuple[_Rule, ...]] = PerVersion(live, self._build, ())

    def _build(self, state: PolicyState, _previous: tuple[_Rule, ...]) -> tuple[_Rule, ...]:
        rules = []
        for index, rule in enumerate(state.block(self.block).faults):
            delay, abort = rule.delay, rule.abort
            rules.append(
                _Rule(
                    f"faults[{index}]",
                    compile_match(rule.match),
                    compile_message_match(rule.match),
                    delay.percent if delay is not None else 0.0,
                    delay.delay if delay is not None else 0.0,
                    abort.percent if abort is not None else 0.0,
                    abort.status if abort is not None else 503,
                )
            )
        return tuple(rules)

    def decide(self, rules: tuple[_Rule, ...], applies: Applies) -> FaultPlan | None:
        """The fault a request gets from the first rule that applies, or None."""
        for rule in rules:
            if rule.matches is not match_all and not applies(rule):
                continue
            delayed = rule.delay_percent > 0 and self._rng.random() * 100 < rule.delay_percent
            aborted = rule.abort_percent > 0 and self._rng.random() * 100 < rule.abort_percent
            if not (delayed or aborted):
                return None
            status = rule.status if aborted else None
            return FaultPlan(rule.name, rule.delay if delayed else 0.0, status)
        return None

    def abort(self, rule: str, status: int) -> FaultInjectedError:
        """The error an aborted request is answered with (counted as a denial)."""
        if self.on_event is not None:
            self.on_event(FaultInjectedError.reason, rule)
        return FaultInjectedError(
            f"fault rule {rule} of {self.block!r} aborted the request with {status}",
            status=status,
            origin=self.block,
            detail={"rule": rule},
        )

    def delayed(self, plan: FaultPlan) -> None:
        if self.on_event is not None:
            self.on_event(DELAYED, plan.rule)


def fault(faults: Faults, clock: Clock) -> InboundLayer:
    """The inbound layer: inject the delays and aborts of the block's fault rules."""
    cache = faults.cache

    def layer(inner: Handle) -> Handle:
        def handle(msg: Message, ctx: Context) -> Awaitable[Message]:
            # a plain function: a request no fault applies to costs no frame
            rules = cache.value if cache.state is cache.live.current else cache.refresh()
            plan = faults.decide(rules, message_applies(msg)) if rules else None
            if plan is None:
                return inner(msg, ctx)
            return injected(msg, ctx, plan)

        async def injected(msg: Message, ctx: Context, plan: FaultPlan) -> Message:
            if plan.delay > 0:
                faults.delayed(plan)
                await clock.sleep(plan.delay)
            if plan.status is not None:
                raise faults.abort(plan.rule, plan.status)
            return await inner(msg, ctx)

        return handle

    return layer
