"""Trace and span ids in the form they travel in: lower-case hex, drawn from the OS in bulk.

Most spans the mesh makes are never recorded: all they need is a
``traceparent`` header, so their ids are only ever hex. Drawing an int and
formatting it (``f"{random.getrandbits(128):032x}"``) costs several times
more than the rest of an unsampled hop's tracing (docs/decisions.md, D68);
here ids are slices of one hex string made from ``os.urandom`` a few
kilobytes at a time. The OS's generator is also the better source: W3C
trace context asks for random ids, and a forked child cannot repeat its
parent's (the buffer is dropped in the child at fork).

Every id the mesh draws comes from here; a recorded span's `SpanContext`
takes the same hex as an int. An all-zero id is invalid in W3C trace
context; one is never returned.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

__all__ = ["span_hex", "trace_hex"]

_CHUNK = 4096  # bytes drawn at a time: 8,192 hex digits, ~170 trace + span id pairs

_buffer = ""
_at = 0


def _take(size: int, zero: str) -> str:
    """The next ``size`` hex digits of the buffer (drawn afresh when it runs out), not ``zero``."""
    global _at, _buffer
    while True:
        at = _at
        end = at + size
        if end > len(_buffer):
            _buffer = os.urandom(_CHUNK).hex()
            at, end = 0, size
        _at = end
        found = _buffer[at:end]
        if found != zero:
            return found


trace_hex: Callable[[], str] = functools.partial(_take, 32, "0" * 32)
"""A new trace id: 32 lower-case hex digits, not all zero."""

span_hex: Callable[[], str] = functools.partial(_take, 16, "0" * 16)
"""A new span id: 16 lower-case hex digits, not all zero."""


def _forget() -> None:
    """In a forked child: draw afresh (the parent's remaining ids are the parent's)."""
    global _buffer, _at
    _buffer, _at = "", 0


os.register_at_fork(after_in_child=_forget)
