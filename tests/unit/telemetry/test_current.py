"""`eblocks.telemetry.current`: the span made current on OpenTelemetry's own context variable.

What the mesh sets there must be what anyone's OpenTelemetry code sees, and
the other way round: both go through the same variable and key.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from opentelemetry.context import attach, create_key, detach, get_value, set_value
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)

from eblocks.telemetry.current import FAST, current_span, enter, leave


def span(n: int, flags: int = 0) -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(n, n, False, TraceFlags(flags)))


def test_the_default_runtime_context_takes_the_fast_path() -> None:
    assert FAST  # OTEL_PYTHON_CONTEXT is unset in the tests, as for a block


def test_a_span_entered_here_is_current_for_the_api_and_leave_restores() -> None:
    assert current_span() is INVALID_SPAN
    one, two = span(1), span(2)
    token = enter(one)
    assert get_current_span() is one
    assert current_span() is one
    inner = enter(two)
    assert get_current_span() is two
    leave(inner)
    assert get_current_span() is one
    leave(token)
    assert get_current_span() is INVALID_SPAN
    assert current_span() is INVALID_SPAN


def test_a_span_the_api_makes_current_is_read_here() -> None:
    one = span(3)
    token = attach(set_span_in_context(one))
    try:
        assert current_span() is one
    finally:
        detach(token)
    assert current_span() is INVALID_SPAN


def test_a_value_under_the_span_key_that_is_no_span_reads_as_none_as_the_api_does() -> None:
    from opentelemetry.trace.propagation import _SPAN_KEY

    for value in ("not a span", 42, span(3)):  # a non-span, again, then a span of a seen type
        token = attach(set_value(_SPAN_KEY, value))
        try:
            assert current_span() is get_current_span()
            assert (current_span() is value) is (value not in ("not a span", 42))
        finally:
            detach(token)


def test_enter_keeps_the_other_values_of_the_current_context() -> None:
    key = create_key("app")
    outer = attach(set_value(key, "kept"))
    try:
        token = enter(span(4))
        assert get_value(key) == "kept"
        leave(token)
    finally:
        detach(outer)


def test_the_sdks_spans_nest_under_a_span_entered_here() -> None:
    provider = TracerProvider()
    parent = span(5, TraceFlags.SAMPLED)  # the SDK's default sampler follows it: recorded
    token = enter(parent)
    try:
        with provider.get_tracer("app").start_as_current_span("work") as work:
            assert current_span() is work
            assert work.get_span_context().trace_id == 5
            assert work.parent is not None  # type: ignore[attr-defined]  # the SDK's span
            assert work.parent.span_id == 5  # type: ignore[attr-defined]
        assert current_span() is parent
    finally:
        leave(token)
        provider.shutdown()


async def test_each_task_has_its_own_current_span() -> None:
    async def run(n: int) -> int:
        token = enter(span(n))
        await asyncio.sleep(0)
        try:
            return current_span().get_span_context().span_id
        finally:
            leave(token)

    assert [*await asyncio.gather(run(6), run(7))] == [6, 7]
    assert current_span() is INVALID_SPAN


def test_another_runtime_context_takes_the_public_api() -> None:
    """With a runtime context other than the API's default, the public API is used."""
    code = """
import opentelemetry.context as context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace import get_current_span

class Other(ContextVarsRuntimeContext):  # what OTEL_PYTHON_CONTEXT could name
    pass

context._RUNTIME_CONTEXT = Other()
from eblocks.telemetry.current import FAST, current_span, enter, leave

assert not FAST
span = NonRecordingSpan(SpanContext(1, 1, False, TraceFlags(0)))
token = enter(span)
assert get_current_span() is span and current_span() is span
leave(token)
assert current_span() is INVALID_SPAN
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
