"""Trace and span ids in the form they travel in: lower-case hex, drawn from the OS in bulk.

Most spans the mesh makes are never recorded: all they need is a
``traceparent`` header, so their ids are only ever hex. Drawing an int and
formatting it (``f"{random.getrandbits(128):032x}"``) costs several times
more than the rest of an unsampled hop's tracing (docs/decisions.md, D68);
here ids are slices of one hex string made from ``os.urandom`` a few
kilobytes at a time. The OS's generator is also the better source: W3C
trace context asks for random ids, and a forked child cannot repeat its
parent's (the buffer is dropped in the child at fork).

An all-zero id is invalid in W3C trace context; one is never returned.
"""

from __future__ import annotations

import os

__all__ = ["span_hex", "trace_hex"]

_CHUNK = 4096  # bytes drawn at a time: 8,192 hex digits, ~170 trace + span id pairs
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16

_buffer = ""
_at = 0


def trace_hex() -> str:
    """A new trace id: 32 lower-case hex digits, not all zero."""
    global _at
    at = _at
    end = at + 32
    if end > len(_buffer):
        at, end = _refill(32)
    _at = end
    found = _buffer[at:end]
    return found if found != _ZERO_TRACE else trace_hex()


def span_hex() -> str:
    """A new span id: 16 lower-case hex digits, not all zero."""
    global _at
    at = _at
    end = at + 16
    if end > len(_buffer):
        at, end = _refill(16)
    _at = end
    found = _buffer[at:end]
    return found if found != _ZERO_SPAN else span_hex()


def _refill(size: int) -> tuple[int, int]:
    global _buffer
    _buffer = os.urandom(_CHUNK).hex()
    return 0, size


def _forget() -> None:
    """In a forked child: draw afresh (the parent's remaining ids are the parent's)."""
    global _buffer, _at
    _buffer, _at = "", 0


os.register_at_fork(after_in_child=_forget)
