"""Traffic and resilience policies: the ``policies`` section of a spec (docs/policies.md).

Two kinds of rule, by who enforces them::

    policies:
      routes:              # enforced by every caller of `to` (client side), first match wins
        - name: canary
          to: store
          match: [{headers: {x-tenant: {exact: beta}}}]
          destinations: [{subset: {version: v2}, weight: 10}, {subset: {version: v1}, weight: 90}]
          sticky: {header: x-user}
          mirror: {to: store-shadow, percent: 5}
          timeout: 2s
          per_try_timeout: 500ms
          retries: {attempts: 3}
      blocks:
        store:             # about calls to `store` (callers) and requests into it (store itself)
          retry_budget: {ratio: 0.2, min_per_second: 10, window: 10s}
          outlier: {consecutive_failures: 5, base_ejection: 30s, max_ejected_percent: 50}
          limits: {max_pending: 256}
          rate_limits: [{rate: 100, burst: 200, per: source}]
          bulkhead: {max_concurrent: 64}
          faults: [{match: {headers: {x-chaos: {exact: "1"}}}, abort: {percent: 10, status: 503}}]

Everything here can change while the mesh runs (`eblocks apply`): the layers
read the current `eblocks.policies.PolicyState` on each request.

A request is matched on its method, path, query and headers. A call between
blocks is a ``POST``; its path (and query) is the ``x-eblocks-path`` header when
the caller sets one, else ``/``. An app block's inbound requests match on the
real method and path.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from eblocks.spec.base import Frozen, Name
from eblocks.spec.units import Duration, Timeout

__all__ = [
    "BlockPolicy",
    "Bulkhead",
    "ConnectionLimits",
    "Destination",
    "FaultAbort",
    "FaultDelay",
    "FaultRule",
    "Mirror",
    "Outlier",
    "Policies",
    "RateLimit",
    "RateOverride",
    "RetryBudget",
    "RetryPolicy",
    "Route",
    "RouteMatch",
    "Sticky",
    "StringMatch",
]

Percent = float


class RetryBudget(Frozen):
    """How many retries a caller may add, as Linkerd's budget: a share plus a floor.

    Over the last ``window``, retries may be at most ``ratio`` of the first
    tries plus ``min_per_second`` x window; past it a failed try is not retried.
    """

    ratio: float = Field(0.2, ge=0, le=10, description="retries per first try allowed")
    min_per_second: float = Field(10.0, ge=0, description="retries per second always allowed")
    window: Duration = Field(10.0, description="the sliding window of the counts")

    @field_validator("window")
    @classmethod
    def _window(cls, value: float) -> float:
        if not 1 <= value <= 300:
            raise ValueError("'window' must be between 1s and 5m")
        return value


def _error_status(value: object) -> object:
    """A status a retry may be for: an error answer (4xx or 5xx); non-numbers are left to
    pydantic."""
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, bool) or (isinstance(number, int) and not 400 <= number <= 599):
        raise ValueError(f"expected an error status, 400..599, got {value!r}")
    return value


ErrorStatus = Annotated[int, Field(ge=400, le=599), BeforeValidator(_error_status)]


class RetryPolicy(Frozen):
    """Idempotent retries of a call on the client side."""

    attempts: int = Field(3, ge=1, le=10, description="tries in all, the first one included")
    backoff: Duration = Field(0.05, description="first backoff; doubles each try, with jitter")
    max_backoff: Duration = Field(1.0, description="cap of one backoff")
    on: tuple[ErrorStatus, ...] = Field(
        (502, 503, 504),
        description="response statuses (400..599) that are retried (connect errors always)",
    )


class StringMatch(Frozen):
    """Exactly one of ``exact``, ``prefix`` or ``regex`` (Python `re`, whole-string match)."""

    exact: str | None = Field(None, description="equal to")
    prefix: str | None = Field(None, description="starts with")
    regex: str | None = Field(None, description="matches in full (Python `re` syntax)")

    @model_validator(mode="after")
    def _one(self) -> StringMatch:
        chosen = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of: exact, prefix, regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"'regex' does not compile: {exc}") from None
        return self


class RouteMatch(Frozen):
    """All of its conditions hold (an empty match matches everything)."""

    path: StringMatch | None = Field(None, description="the request path")
    methods: tuple[str, ...] = Field((), description="HTTP methods (upper case); any if empty")
    headers: dict[str, StringMatch] = Field(
        default_factory=dict, description="header name (any case) -> condition"
    )
    query: dict[str, StringMatch] = Field(
        default_factory=dict, description="query parameter -> condition"
    )

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in value)

    @field_validator("headers")
    @classmethod
    def _lower(cls, value: dict[str, StringMatch]) -> dict[str, StringMatch]:
        return {k.lower(): v for k, v in value.items()}


class Destination(Frozen):
    """Where a share of a route's traffic goes: a block (default: the route's ``to``),
    a labelled subset of its instances, or a pattern."""

    block: Name | None = Field(None, description="the block (default: the route's `to`)")
    pattern: Name | None = Field(None, description="a pattern to run instead of a block")
    subset: dict[str, str] = Field(
        default_factory=dict, description="only instances with these labels (e.g. version: v2)"
    )
    weight: int = Field(100, ge=0, le=1_000_000, description="relative share of the traffic")

    @model_validator(mode="after")
    def _kind(self) -> Destination:
        if self.block is not None and self.pattern is not None:
            raise ValueError("a destination is a block or a pattern, not both")
        if self.pattern is not None and self.subset:
            raise ValueError("'subset' selects instances of a block; a pattern has none")
        return self


class Sticky(Frozen):
    """Keep one key on one destination of a split (and one endpoint, when it can)."""

    header: str | None = Field(
        None, description="the header holding the key (default: the idempotency key)"
    )


class Mirror(Frozen):
    """Copy a share of the traffic to another destination; its answers are discarded."""

    to: Name = Field(description="block that receives the copies")
    subset: dict[str, str] = Field(default_factory=dict, description="only instances with labels")
    percent: Percent = Field(100.0, ge=0, le=100, description="share of requests copied")
    max_inflight: int = Field(
        64, ge=1, le=100_000, description="copies in flight at most; past it, copies are dropped"
    )


class Route(Frozen):
    """A rule for calls to block ``to`` (a block, not a pattern; its destinations may name
    patterns); the first route that matches applies."""

    name: str = Field(min_length=1, description="named in metrics, errors and `eblocks diff`")
    to: Name = Field(description="the block the calls are addressed to")
    match: tuple[RouteMatch, ...] = Field((), description="any of these (none: every call to `to`)")
    destinations: tuple[Destination, ...] = Field(
        (), description="weighted split (none: `to` itself)"
    )
    sticky: Sticky | None = Field(None, description="one key, one destination")
    mirror: Mirror | None = Field(None, description="shadow traffic")
    timeout: Annotated[float, Timeout("leave it out for the block's timeout")] | None = Field(
        None, description="deadline of the whole call, all tries"
    )
    per_try_timeout: (
        Annotated[float, Timeout("leave it out and only the call's timeout bounds a try")] | None
    ) = Field(None, description="deadline of one try")
    retries: RetryPolicy | None = Field(None, description="retries (default: the block's)")

    @model_validator(mode="after")
    def _weights(self) -> Route:
        if self.destinations and sum(d.weight for d in self.destinations) == 0:
            raise ValueError("the destinations' weights add up to 0: no traffic could go anywhere")
        return self


class Outlier(Frozen):
    """Per-endpoint circuit breaking (Envoy's outlier detection): eject, probe, readmit."""

    consecutive_failures: int | None = Field(
        5, ge=1, description="failures in a row that eject an endpoint (null: off)"
    )
    success_rate_stdev: float | None = Field(
        1.9, gt=0, description="eject below mean - this x stdev of the endpoints' success rates"
    )
    success_rate_min_hosts: int = Field(
        5,
        ge=2,
        description="endpoints needed for that check; it ejects only from more than stdev² + 1",
    )
    success_rate_min_requests: int = Field(
        50, ge=1, description="requests an endpoint needs in an interval to be judged"
    )
    interval: Duration = Field(10.0, description="how often success rates are judged")
    base_ejection: Duration = Field(
        30.0, description="first ejection; each repeat ejection of an endpoint is longer"
    )
    max_ejected_percent: Percent = Field(
        50.0, ge=0, le=100, description="never eject more than this share of the endpoints"
    )


class ConnectionLimits(Frozen):
    """Bounds on what a caller sends one block at once; past them, `overloaded` at once."""

    max_pending: int | None = Field(
        None, ge=1, description="requests in flight to the block from this caller"
    )
    max_connections: int | None = Field(
        None, ge=1, description="connections this caller keeps to the block"
    )


class RateOverride(Frozen):
    """A different rate for some sources (identity or block-name globs)."""

    source: tuple[str, ...] = Field(min_length=1, description="source globs (block or SPIFFE ID)")
    rate: float = Field(gt=0, description="requests per second")
    burst: int | None = Field(None, ge=1, description="bucket size (default: one second's rate)")


class RateLimit(Frozen):
    """A local token bucket; a request without a token gets 429 and ``retry-after``."""

    match: RouteMatch | None = Field(None, description="only these requests (default: all)")
    rate: float = Field(gt=0, description="requests per second, per instance")
    burst: int | None = Field(None, ge=1, description="bucket size (default: one second's rate)")
    per: Literal["block", "source"] = Field(
        "block", description="one bucket for the block, or one per source identity"
    )
    overrides: tuple[RateOverride, ...] = Field((), description="other rates for some sources")


class Bulkhead(Frozen):
    """At most ``max_concurrent`` requests in the handler; the excess gets 503 at once."""

    match: RouteMatch | None = Field(None, description="only these requests (default: all)")
    max_concurrent: int = Field(ge=1, le=1_000_000, description="requests handled at once")


class FaultDelay(Frozen):
    percent: Percent = Field(ge=0, le=100, description="share of matching requests delayed")
    delay: Duration = Field(description="how long")


class FaultAbort(Frozen):
    percent: Percent = Field(ge=0, le=100, description="share of matching requests refused")
    status: int = Field(503, ge=400, le=599, description="the status they get")


class FaultRule(Frozen):
    """Chaos testing: delay and/or refuse a share of the matching requests."""

    match: RouteMatch | None = Field(None, description="only these requests (default: all)")
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None

    @model_validator(mode="after")
    def _something(self) -> FaultRule:
        if self.delay is None and self.abort is None:
            raise ValueError("a fault sets 'delay', 'abort' or both")
        return self


class BlockPolicy(Frozen):
    """Policies about one block: how callers treat it, and what it admits."""

    retry_budget: RetryBudget | None = Field(
        None, description="caps the retries its callers add (callers enforce)"
    )
    outlier: Outlier | None = Field(None, description="circuit breaking per endpoint (callers)")
    limits: ConnectionLimits | None = Field(None, description="per-caller bounds (callers)")
    rate_limits: tuple[RateLimit, ...] = Field((), description="token buckets (the block)")
    bulkhead: Bulkhead | None = Field(None, description="concurrency bound (the block)")
    faults: tuple[FaultRule, ...] = Field((), description="injected faults (the block)")


class Policies(Frozen):
    """Traffic and resilience policies; `eblocks apply` changes them without a restart."""

    routes: tuple[Route, ...] = Field((), description="client-side routing rules, in order")
    blocks: dict[Name, BlockPolicy] = Field(
        default_factory=dict, description="policies about each block"
    )
