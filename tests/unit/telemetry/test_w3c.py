"""The span contexts made from ``traceparent``'s parts, and the flag tables.

The grammar itself (`w3c.caller_parts`) is tested through its users: `parse_traceparent`
(test_tracing.py) and `Tracing.server_span` (test_spans.py).
"""

from __future__ import annotations

import random

import pytest
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from eblocks.telemetry import w3c


def test_span_contexts_are_made_as_plain_tuples_with_this_api() -> None:
    assert w3c.span_context is w3c._plain_span_context  # the layout check passed at import
    rng = random.Random(7)
    state = TraceState([("vendor", "x")])
    for _ in range(200):
        args = (
            rng.getrandbits(128) or 1,
            rng.getrandbits(64) or 1,
            rng.random() < 0.5,
            TraceFlags(rng.getrandbits(8)),
            state if rng.random() < 0.5 else None,
        )
        made, real = w3c.span_context(*args), SpanContext(*args)
        assert made == real
        assert type(made) is SpanContext
        assert (made.trace_flags, made.trace_state, made.is_valid) == (
            real.trace_flags,
            real.trace_state,
            True,
        )


def test_a_changed_api_layout_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the API to lay its tuple out otherwise, the constructor would be used."""

    def swapped(*args: object) -> object:
        trace_id, span_id, remote, flags, state = args
        return tuple.__new__(SpanContext, (span_id, trace_id, remote, flags, state, True))

    monkeypatch.setattr(w3c, "_plain_span_context", swapped)
    assert not w3c._same_as_the_api()


def test_the_flag_tables_agree_with_the_flags() -> None:
    for v in range(256):
        flags, child, suffix = w3c.FLAGS[f"{v:02x}"]
        assert flags == v
        assert child == v & w3c.RANDOM
        assert (suffix is None) is bool(v & TraceFlags.SAMPLED)
        assert w3c.SAMPLED_CHILD[v] == TraceFlags.SAMPLED | (v & w3c.RANDOM)
        assert (f"{v:02x}"[-1] in w3c.EVEN) is not bool(v & TraceFlags.SAMPLED)
