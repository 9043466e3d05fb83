"""W3C trace context's ``traceparent``: its grammar, its flags, and its parts.

``<version>-<trace id>-<parent id>-<flags>``, lower-case hex, as
OpenTelemetry's propagator reads it: version ``ff`` is invalid, version
``00`` has exactly these four fields (a later version may add more), and an
all-zero trace or parent id is invalid. `caller_parts` is the one parser
(`eblocks.telemetry.tracing` and `eblocks.telemetry.spans` both use it); the
version-00 form every caller sends is checked by one pattern and cut at
fixed places.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from opentelemetry.trace import SpanContext, TraceFlags, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

__all__ = [
    "EVEN",
    "FLAGS",
    "NEW_SAMPLED",
    "NEW_UNSAMPLED",
    "NEW_UNSAMPLED_SUFFIX",
    "RANDOM",
    "SAMPLED_CHILD",
    "V00_LENGTH",
    "caller_parts",
    "span_context",
]

_TRACEPARENT = re.compile(r"\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*")
_V00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
V00_LENGTH: Final = 55
"""The length of a version-00 ``traceparent``."""
_NO_TRACE, _NO_SPAN = "0" * 32, "0" * 16

RANDOM = TraceFlags.RANDOM_TRACE_ID
"""The only flag a child keeps besides "sampled" (W3C level 2's random trace id)."""
NEW_SAMPLED = TraceFlags(TraceFlags.SAMPLED | RANDOM)
"""A new trace's flags when it is recorded (its ids are random, as the SDK's)."""
NEW_UNSAMPLED = TraceFlags(RANDOM)
"""A new trace's flags when it is not recorded."""
NEW_UNSAMPLED_SUFFIX = f"-{NEW_UNSAMPLED:02x}"

FLAGS: dict[str, tuple[TraceFlags, TraceFlags, str | None]] = {
    f"{v:02x}": (
        TraceFlags(v),
        TraceFlags(v & RANDOM),
        None if v & TraceFlags.SAMPLED else f"-{v & RANDOM:02x}",
    )
    for v in range(256)
}
"""``traceparent`` flags (hex) -> (the flags, an unsampled child's flags, that child's
``-<flags>`` suffix; None when the flags say "sampled")."""

SAMPLED_CHILD: dict[int, TraceFlags] = {
    v: TraceFlags(TraceFlags.SAMPLED | (v & RANDOM)) for v in range(256)
}
"""A sampled parent's flags -> its recorded child's (sampled, and the parent's random flag)."""

EVEN = frozenset("02468ace")
"""The low hex digits of flags without "sampled": a version-00 header (`V00_LENGTH`) whose
last digit is one of these says "not sampled", whether or not the rest is well formed."""


def caller_parts(traceparent: str) -> tuple[str, str, str] | None:
    """Trace id, parent id and flags (hex) of a caller's ``traceparent``; None if invalid."""
    if len(traceparent) == V00_LENGTH and _V00.fullmatch(traceparent) is not None:
        trace, span, flags = traceparent[3:35], traceparent[36:52], traceparent[53:]
    else:
        found = _TRACEPARENT.fullmatch(traceparent)
        if found is None:
            return None
        version, trace, span, flags, rest = found.groups()
        if version == "ff" or (version == "00" and rest is not None):
            return None  # ff: invalid; version 00 has exactly four fields
    if trace == _NO_TRACE or span == _NO_SPAN:
        return None
    return trace, span, flags


_tuple_new = tuple.__new__


def _plain_span_context(
    trace_id: int, span_id: int, remote: bool, flags: TraceFlags, state: TraceState | None
) -> SpanContext:
    return _tuple_new(
        SpanContext,
        (trace_id, span_id, remote, flags, DEFAULT_TRACE_STATE if state is None else state, True),
    )


def _same_as_the_api() -> bool:
    """Whether `_plain_span_context` makes what `SpanContext(...)` makes (the API's tuple layout:
    trace id, span id, remote, flags, state, valid)."""
    flags, state = TraceFlags(1), TraceState([("k", "v")])
    for args in ((3, 4, True, flags, state), (1 << 127, 1, False, flags, None)):
        made, real = _plain_span_context(*args), SpanContext(*args)
        if type(made) is not type(real) or made != real:
            return False
        if (made.trace_id, made.span_id, made.is_remote) != args[:3]:
            return False
        if made.trace_flags is not args[3] or not made.is_valid:
            return False
        if made.trace_state is not (args[4] if args[4] is not None else DEFAULT_TRACE_STATE):
            return False
    return True


span_context: Callable[[int, int, bool, TraceFlags, TraceState | None], SpanContext] = (
    _plain_span_context if _same_as_the_api() else SpanContext
)
"""``SpanContext(trace_id, span_id, remote, flags, state)`` for ids known to be valid
(non-zero, in range: a caller's checked by `caller_parts`, or drawn by `eblocks.telemetry.ids`).

`SpanContext`'s own ``__new__`` checks the ids and fills defaults in Python, several
times the cost of the tuple itself; a recorded span needs two. Made as the plain tuple
when the API lays it out as checked at import (`_same_as_the_api`), by the constructor
otherwise."""
