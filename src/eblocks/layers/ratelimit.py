"""Rate limiting: local token buckets per block, per rule and per source (inbound).

A `TokenBucket` holds up to ``burst`` tokens and gains ``rate`` per second;
it is refilled when it is read (no timer), from the injected clock. Each
request takes one token from every rule it matches; a request that finds a
bucket empty is refused with `RateLimitedError` (429, ``retry-after``: the
time until that bucket has a token again) and the tokens it took from the
rules before are given back.

One rule (`RateLimiter`) has one bucket for the whole block (``per: block``)
or one per source identity (``per: source``, at most ``max_sources``; the
least recently used is dropped past that, and comes back full). A source
matching an override's globs is counted in the override's bucket(s) at the
override's rate instead: one shared bucket with ``per: block``, one per
source with ``per: source``.

Buckets belong to the rule's key (`eblocks.policies.inbound.rule_keys`): a
new policy version that leaves a rule unchanged keeps its buckets; a changed
rule starts with full ones.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from eblocks._types import Clock
from eblocks.block.inbound import Handle, InboundLayer
from eblocks.errors import RateLimitedError
from eblocks.message import Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.inbound import PerVersion, glob_match, rule_keys, source_of
from eblocks.policies.match import (
    Applies,
    Matcher,
    MessageMatcher,
    compile_match,
    compile_message_match,
    match_all,
    message_applies,
)
from eblocks.spec.policies import RateLimit

if TYPE_CHECKING:
    from eblocks.block.context import Context

__all__ = ["MAX_SOURCES", "RateLimiter", "RateLimits", "TokenBucket", "rate_limit"]

MAX_SOURCES = 10_000
"""Per-source buckets one rule keeps at most (the least recently used go first)."""

OnDeny = Callable[[str, str], None]
"""Told ``(reason, rule)`` for each request a policy refuses (metrics)."""


class TokenBucket:
    """``burst`` tokens at most, ``rate`` more per second; starts full."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        tokens = self._tokens
        if now > self._stamp:
            tokens = min(self.burst, tokens + (now - self._stamp) * self.rate)
            self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self.rate

    def give_back(self) -> None:
        """Undo a `take` (another rule refused the request)."""
        self._tokens = min(self.burst, self._tokens + 1.0)

    def tokens(self, now: float) -> float:
        """The tokens there are at ``now`` (for tests and stats; changes nothing)."""
        return min(self.burst, self._tokens + max(0.0, now - self._stamp) * self.rate)


def _burst(rate: float, burst: int | None) -> int:
    return burst if burst is not None else max(1, round(rate))


class RateLimiter:
    """One `RateLimit` rule: its matcher, its overrides and its buckets."""

    __slots__ = (
        "_buckets",
        "_clock",
        "_index",
        "_last",
        "_max",
        "_overrides",
        "_per_source",
        "_rates",
        "matches",
        "matches_message",
        "name",
        "rule",
    )

    def __init__(
        self, rule: RateLimit, name: str, clock: Clock, max_sources: int = MAX_SOURCES
    ) -> None:
        if max_sources < 1:
            raise ValueError(f"max_sources must be >= 1, got {max_sources}")
        self.rule = rule
        self.name = name  # where the rule is in this version: "rate_limits[0]"
        self.matches: Matcher = compile_match(rule.match)
        self.matches_message: MessageMatcher = compile_message_match(rule.match)
        self._clock = clock
        self._max = max_sources
        self._per_source = rule.per == "source"
        # index 0: the rule's own rate; 1..n: its overrides, in order
        self._rates = [(rule.rate, _burst(rule.rate, rule.burst))]
        self._rates += [(o.rate, _burst(o.rate, o.burst)) for o in rule.overrides]
        self._overrides = [o.source for o in rule.overrides]
        self._buckets: collections.OrderedDict[tuple[int, str], TokenBucket] = (
            collections.OrderedDict()
        )
        self._index: dict[str, int] = {}  # source -> its override (0: none); globs once each
        # the source and bucket of the last request: the most recently used bucket,
        # which is never the one dropped, so a run of requests from one source
        # skips the lookups (and moving it to the end, where it already is)
        self._last: tuple[str, TokenBucket] | None = None

    def override(self, source: str) -> int:
        """Which rate applies to ``source``: 0 the rule's, n its n-th override's."""
        if not self._overrides:
            return 0
        index = self._index.get(source)
        if index is None:
            index = next(
                (n for n, globs in enumerate(self._overrides, 1) if glob_match(source, globs)), 0
            )
            if len(self._index) >= self._max:
                self._index.clear()
            self._index[source] = index
        return index

    def bucket(self, source: str) -> TokenBucket:
        """The bucket a request from ``source`` takes its token from (made when needed)."""
        last = self._last
        if last is not None and last[0] == source:
            return last[1]
        index = self.override(source)
        key = (index, source if self._per_source else "")
        buckets = self._buckets
        found = buckets.get(key)
        if found is None:
            rate, burst = self._rates[index]
            found = buckets[key] = TokenBucket(rate, burst, self._clock.monotonic())
            if len(buckets) > self._max:
                buckets.popitem(last=False)  # never `found`: max_sources >= 1
        else:
            buckets.move_to_end(key)
        self._last = (source, found)
        return found

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimits:
    """The rate limits of one block across policy versions: `admit` or refuse a request."""

    __slots__ = ("_clock", "_max", "block", "cache", "on_deny")

    def __init__(
        self,
        live: LivePolicies,
        block: str,
        clock: Clock,
        *,
        max_sources: int = MAX_SOURCES,
        on_deny: OnDeny | None = None,
    ) -> None:
        self.block = block
        self._clock = clock
        self._max = max_sources
        self.on_deny = on_deny
        self.cache: PerVersion[tuple[RateLimiter, ...]] = PerVersion(live, self._build, ())

    def _build(
        self, state: PolicyState, previous: tuple[RateLimiter, ...]
    ) -> tuple[RateLimiter, ...]:
        rules = state.block(self.block).rate_limits
        kept = dict(zip(rule_keys(r.rule for r in previous), previous, strict=True))
        limiters = []
        for index, (key, rule) in enumerate(zip(rule_keys(rules), rules, strict=True)):
            limiter = kept.get(key) or RateLimiter(rule, "", self._clock, self._max)
            limiter.name = f"rate_limits[{index}]"
            limiters.append(limiter)
        return tuple(limiters)

    def admit(self, limiters: tuple[RateLimiter, ...], applies: Applies, source: str) -> None:
        """Take a token from each rule that applies; `RateLimitedError` if one has none."""
        taken: list[TokenBucket] = []
        now = self._clock.monotonic()
        for limiter in limiters:
            if limiter.matches is not match_all and not applies(limiter):
                continue
            bucket = limiter.bucket(source)
            wait = bucket.take(now)
            if wait > 0.0:
                for other in taken:
                    other.give_back()
                if self.on_deny is not None:
                    self.on_deny(RateLimitedError.reason, limiter.name)
                raise RateLimitedError(
                    f"rate limit {limiter.name} of {self.block!r} "
                    f"({bucket.rate:g}/s, burst {bucket.burst:g}) has no token for {source!r}",
                    origin=self.block,
                    detail={
                        "rule": limiter.name,
                        "retry_after": round(wait, 3),
                        "rate": bucket.rate,
                        "source": source,
                    },
                )
            taken.append(bucket)


def rate_limit(limits: RateLimits) -> InboundLayer:
    """The inbound layer: refuse what the block's rate limits have no token for."""
    cache = limits.cache

    def layer(inner: Handle) -> Handle:
        def handle(msg: Message, ctx: Context) -> Awaitable[Message]:
            # a plain function: no frame of its own (a refusal is raised when it is
            # called, inside the outer layer's `await inner(...)`)
            limiters = cache.value if cache.state is cache.live.current else cache.refresh()
            if limiters:
                limits.admit(limiters, message_applies(msg), source_of(ctx.peer, msg.headers))
            return inner(msg, ctx)

        return handle

    return layer
