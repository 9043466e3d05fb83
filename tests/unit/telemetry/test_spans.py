"""The spans `Tracing` makes itself: the sampler's decisions, the W3C headers, what is exported.

Each test builds a `Tracing` as a block does (`Tracing.create`: the batch
processor and an in-memory exporter) and checks the result against the
OpenTelemetry SDK's own rules: the `TraceIdRatioBased` decision on the same
trace id, ``ParentBased`` for children, the SDK tracer's spans as children.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)

from eblocks.telemetry.tracing import Tracing, parse_traceparent, traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def make(sampling: float) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing.create("b", "b-0", sampling=sampling, exporter=exporter), exporter


def finished(tracing: Tracing, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracing.shutdown()  # flushes the batch processor
    return list(exporter.get_finished_spans())


class Current:
    """``span`` made current as the inbound side does, for a ``with`` block."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def __enter__(self) -> Span:
        self.token = attach(set_span_in_context(self.span))
        return self.span

    def __exit__(self, *exc: object) -> None:
        detach(self.token)


def headers_of(tracing: Tracing) -> tuple[dict[str, str], Span | None]:
    headers: dict[str, str] = {"x-request-id": "r"}
    span = tracing.client_span("call w", headers)
    return headers, span


def test_new_traces_are_decided_as_trace_id_ratio_based_decides() -> None:
    tracing, _ = make(0.25)
    sdk = TraceIdRatioBased(0.25)
    recorded = 0
    for _ in range(4000):
        span = tracing.server_span("b", "direct", None, None)
        ctx = span.get_span_context()
        expected = (
            sdk.should_sample(None, ctx.trace_id, "b direct").decision is Decision.RECORD_AND_SAMPLE
        )
        assert span.is_recording() is expected
        assert ctx.trace_flags == (0x03 if expected else 0x02)  # random-trace-id, as the SDK
        assert ctx.is_valid
        assert ctx.span_id != 0
        recorded += expected
        span.end()
    assert 0.2 < recorded / 4000 < 0.3
    tracing.shutdown()


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_ratio_of_zero_records_no_new_trace_and_one_records_every_one(ratio: float) -> None:
    tracing, _ = make(ratio)  # at 1 the SDK's bound is 2**64: above every trace id
    for _ in range(500):
        server = tracing.server_span("b", "direct", None, None)
        headers, client = headers_of(tracing)
        assert server.is_recording() is (ratio == 1.0)
        assert (client is not None) is (ratio == 1.0)
        assert headers["traceparent"].endswith("-03" if ratio else "-02")
        server.end()
        if client is not None:
            client.end()
    tracing.shutdown()


def test_a_new_trace_from_a_client_carries_its_decision_downstream() -> None:
    tracing, exporter = make(0.5)
    sdk = TraceIdRatioBased(0.5)
    seen: dict[bool, int] = {True: 0, False: 0}
    traces = set()
    for _ in range(400):
        headers, span = headers_of(tracing)
        found = HEADER.fullmatch(headers["traceparent"])
        assert found is not None, headers
        trace, span_id, flags = found.groups()
        sampled = (
            sdk.should_sample(None, int(trace, 16), "call w").decision is Decision.RECORD_AND_SAMPLE
        )
        assert flags == ("03" if sampled else "02")
        assert (span is not None) is sampled
        if span is not None:
            assert span.get_span_context().span_id == int(span_id, 16)
            span.end()
        assert "tracestate" not in headers
        assert headers["x-request-id"] == "r"
        seen[sampled] += 1
        traces.add(trace)
    assert len(traces) == 400
    assert min(seen.values()) > 100
    spans = finished(tracing, exporter)
    assert len(spans) == seen[True]
    assert all(s.parent is None and s.kind is SpanKind.CLIENT for s in spans)


@pytest.mark.parametrize(("flags", "child"), [("00", "00"), ("02", "02"), ("04", "00")])
def test_an_unsampled_caller_keeps_its_trace_and_decision_downstream(
    flags: str, child: str
) -> None:
    tracing, exporter = make(1.0)  # the caller's decision wins over the ratio
    incoming = f"00-{TRACE}-00f067aa0ba902b7-{flags}"
    server = tracing.server_span("b", "direct", incoming, "vendor=x,other=y")
    assert not server.is_recording()
    ctx = server.get_span_context()
    assert (ctx.trace_id, ctx.trace_flags) == (int(TRACE, 16), int(child, 16))
    assert ctx.span_id not in (0, 0x00F067AA0BA902B7)
    assert ctx.trace_state.to_header() == "vendor=x,other=y"
    assert traceparent(server) == {
        "traceparent": f"00-{TRACE}-{ctx.span_id:016x}-{child}",
        "tracestate": "vendor=x,other=y",
    }
    span_ids = set()
    with Current(server):
        for _ in range(3):
            headers, span = headers_of(tracing)
            assert span is None
            found = HEADER.fullmatch(headers["traceparent"])
            assert found is not None
            assert (found[1], found[3]) == (TRACE, child)
            assert headers["tracestate"] == "vendor=x,other=y"
            span_ids.add(found[2])
        child_span = tracing.start_span("call w", SpanKind.CLIENT)
        assert not child_span.is_recording()
        assert child_span.get_span_context().trace_id == int(TRACE, 16)
    assert len(span_ids) == 3
    assert f"{ctx.span_id:016x}" not in span_ids
    assert finished(tracing, exporter) == []


def test_a_foreign_unsampled_parent_is_followed_too() -> None:
    tracing, exporter = make(1.0)
    parent = NonRecordingSpan(SpanContext(int(TRACE, 16), 7, True, TraceFlags(0)))
    with Current(parent):
        headers, span = headers_of(tracing)
    assert span is None
    assert headers["traceparent"].startswith(f"00-{TRACE}-")
    assert headers["traceparent"].endswith("-00")
    assert finished(tracing, exporter) == []


def test_a_sampled_caller_gets_recorded_spans_that_are_exported() -> None:
    tracing, exporter = make(0.0)  # the caller's decision wins over the ratio
    incoming = f"00-{TRACE}-00f067aa0ba902b7-01"
    server = tracing.server_span("b", "ingest", incoming, "vendor=x")
    assert server.is_recording()
    server.set_attributes({"eblocks.route": "ingest", "eblocks.stage": "1"})
    with Current(server):
        headers, client = headers_of(tracing)
        assert client is not None
        client.set_attributes({"eblocks.attempt": 1, "server.port": 8080})
        client.set_attribute("http.response.status_code", 200)
        client.end()
    server.set_status(StatusCode.ERROR, "boom")
    server.end()
    server.end()  # a second end is ignored, as the SDK's
    names = {s.name: s for s in finished(tracing, exporter)}
    assert set(names) == {"b ingest", "call w"}
    got, call = names["b ingest"], names["call w"]
    assert got.parent is not None
    assert got.parent.is_remote
    assert (got.parent.trace_id, got.parent.span_id) == (int(TRACE, 16), 0x00F067AA0BA902B7)
    assert got.kind is SpanKind.SERVER
    assert got.status.status_code is StatusCode.ERROR
    assert got.status.description == "boom"
    assert dict(got.attributes or {}) == {"eblocks.route": "ingest", "eblocks.stage": "1"}
    assert got.resource.attributes["service.name"] == "b"
    assert got.instrumentation_scope is not None
    assert got.instrumentation_scope.name == "eblocks"
    with pytest.deprecated_call():  # still read by older exporters
        info = got.instrumentation_info
    assert info is not None
    assert info.name == "eblocks"
    assert got.context.trace_state.to_header() == "vendor=x"
    assert call.parent is not None
    assert call.parent.span_id == got.context.span_id
    assert headers["traceparent"] == f"00-{TRACE}-{call.context.span_id:016x}-01"
    assert headers["tracestate"] == "vendor=x"
    assert dict(call.attributes or {}) == {
        "eblocks.attempt": 1,
        "server.port": 8080,
        "http.response.status_code": 200,
    }
    assert got.start_time is not None
    assert got.end_time is not None
    assert got.start_time <= call.start_time <= call.end_time <= got.end_time  # type: ignore[operator]
    assert "b ingest" in got.to_json()


def _exercise(span: Span) -> None:
    span.set_attributes({"plain": "x", "many": [1, 2]})  # a list: the SDK's checks, a tuple
    span.set_attribute("nested", {"k": ["v"]})
    span.set_attribute("", "empty key")  # dropped
    span.set_attribute("odd", object())  # type: ignore[arg-type]  # becomes None, as the SDK's
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR, "ignored: OK is final")
    try:
        raise ValueError("no good")
    except ValueError as exc:
        span.record_exception(exc)
    span.add_event("retry", {"attempt": 2})
    span.update_name("b renamed")
    span.end()
    span.set_attribute("late", 1)  # after the end: ignored


def test_recorded_spans_keep_attributes_status_and_events_as_the_sdks_span() -> None:
    tracing, exporter = make(1.0)
    _exercise(tracing.server_span("b", "direct", None, None))
    (got,) = finished(tracing, exporter)
    sdk_exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(sdk_exporter))
    _exercise(provider.get_tracer("sdk").start_span("b direct"))
    provider.shutdown()
    (sdk,) = sdk_exporter.get_finished_spans()
    assert got.name == sdk.name == "b renamed"
    assert dict(got.attributes or {}) == dict(sdk.attributes or {})
    assert dict(got.attributes or {})["many"] == (1, 2)
    assert got.status.status_code is sdk.status.status_code is StatusCode.OK
    assert [e.name for e in got.events] == [e.name for e in sdk.events] == ["exception", "retry"]
    for ours, theirs in zip(got.events, sdk.events, strict=True):
        assert set(ours.attributes or {}) == set(theirs.attributes or {})
    exception = got.events[0].attributes or {}
    assert exception["exception.type"] == "ValueError"
    assert exception["exception.message"] == "no good"
    assert "no good" in str(exception["exception.stacktrace"])
    assert dict(got.events[1].attributes or {}) == {"attempt": 2}


def test_spans_of_other_tracers_nest_under_ours() -> None:
    tracing, exporter = make(1.0)
    theirs = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(theirs))
    server = tracing.server_span("b", "direct", None, None)
    with Current(server), provider.get_tracer("app").start_as_current_span("handler work"):
        headers, client = headers_of(tracing)
        assert client is not None
        client.end()
    server.end()
    provider.shutdown()
    (work,) = theirs.get_finished_spans()
    ours = {s.name: s for s in finished(tracing, exporter)}
    assert work.parent is not None
    assert work.parent.span_id == server.get_span_context().span_id
    assert work.context.trace_id == server.get_span_context().trace_id
    call = ours["call w"]
    assert call.parent is not None
    assert call.parent.span_id == work.context.span_id
    assert headers["traceparent"] == (
        f"00-{work.context.trace_id:032x}-{call.context.span_id:016x}-03"
    )


def test_an_unrecorded_new_trace_still_gives_children_valid_headers() -> None:
    tracing, exporter = make(0.0)
    server = tracing.server_span("b", "direct", "garbage", "vendor=x")  # malformed: a new trace
    assert not server.is_recording()
    ctx = server.get_span_context()
    with Current(server):
        headers, span = headers_of(tracing)
    assert span is None
    assert "tracestate" not in headers
    assert headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-")
    assert headers["traceparent"].endswith("-02")
    parsed = parse_traceparent(headers["traceparent"])
    assert parsed is not None
    assert parsed.trace_id == ctx.trace_id
    assert finished(tracing, exporter) == []


def test_a_tracing_without_its_sink_leaves_recorded_spans_to_the_sdk() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # the SDK's default sampler: every new trace is recorded
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    server = tracing.server_span("b", "direct", None, None)
    assert server.is_recording()
    server.end()
    unsampled = tracing.server_span("b", "direct", f"00-{TRACE}-00f067aa0ba902b7-00", None)
    assert not unsampled.is_recording()
    provider.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["b direct"]


@pytest.fixture(autouse=True)
def _no_leftover_context() -> Iterator[None]:
    """Every test detaches what it attached: the next one starts with no current span."""
    yield
    assert not get_current_span().get_span_context().is_valid


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-00", True),
        (f"00-{TRACE}-00f067aa0ba902b7-02", True),
        (f"01-{TRACE}-00f067aa0ba902b7-00-future", True),
        (f" 00-{TRACE}-00f067aa0ba902b7-00 ", True),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-00", False),
        (f"00-{TRACE}-00F067AA0BA902B7-00", False),
        (f"00-{TRACE}-00f067aa0ba902b7-0g", False),
        (f"00-{TRACE}_00f067aa0ba902b7-00", False),
        (f"00-{TRACE}-00f067aa0ba902b7-00-extra", False),
        (f"ff-{TRACE}-00f067aa0ba902b7-00", False),
        (f"00-{'0' * 32}-00f067aa0ba902b7-00", False),
        (f"00-{TRACE}-{'0' * 16}-00", False),
    ],
)
def test_a_server_span_follows_a_valid_traceparent_and_starts_a_trace_otherwise(
    header: str, ok: bool
) -> None:
    tracing, exporter = make(0.0)  # a new trace is never recorded: what is seen is the parse
    server = tracing.server_span("b", "direct", header, None)
    assert not server.is_recording()
    followed = server.get_span_context().trace_id == int(TRACE, 16)
    assert followed is ok
    with Current(server):
        headers, _ = headers_of(tracing)
    assert headers["traceparent"].startswith(f"00-{TRACE}-" if ok else "00-")
    assert HEADER.fullmatch(headers["traceparent"]) is not None
    assert finished(tracing, exporter) == []


def test_an_unsampled_spans_ids_are_made_once_when_asked() -> None:
    tracing, _ = make(0.0)
    server = tracing.server_span("b", "direct", f"00-{TRACE}-00f067aa0ba902b7-00", "vendor=x")
    first = server.get_span_context()
    assert server.get_span_context() is first  # the same ids every time
    assert first.span_id not in (0, 0x00F067AA0BA902B7)
    assert first.trace_state.to_header() == "vendor=x"
    assert repr(first) in repr(server)
    with Current(server):
        child = tracing.start_span("call w", SpanKind.CLIENT)
    assert child.get_span_context().trace_id == int(TRACE, 16)
    assert child.get_span_context().span_id != first.span_id
    assert traceparent(child)["tracestate"] == "vendor=x"
    tracing.shutdown()


def test_an_unsampled_callers_header_is_read_only_when_a_child_needs_it() -> None:
    tracing, exporter = make(1.0)
    server = tracing.server_span("b", "direct", f"00-{TRACE}-00f067aa0ba902b7-02", None)
    assert not server.is_recording()
    with Current(server):
        assert "_caller" in vars(server)  # made current and asked if recording: not parsed
        headers, span = headers_of(tracing)
    assert span is None
    assert "_caller" not in vars(server)
    found = HEADER.fullmatch(headers["traceparent"])
    assert found is not None
    assert found.group(1) == TRACE
    assert found.group(2) != "00f067aa0ba902b7"
    assert found.group(3) == "02"  # the random-trace-id flag is kept, "sampled" is not
    assert "tracestate" not in headers
    assert server.get_span_context().trace_id == int(TRACE, 16)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        getattr(server, "missing")  # noqa: B009 - the attribute lookup is what is tested
    assert finished(tracing, exporter) == []


@pytest.mark.parametrize(
    "header",
    [
        f"00-{TRACE.upper()}-00f067aa0ba902b7-00",
        f"00-{'0' * 32}-00f067aa0ba902b7-00",
        f"00-{TRACE}-{'0' * 16}-00",
        f"00-{TRACE}_00f067aa0ba902b7-00",
    ],
)
def test_a_malformed_header_that_says_unsampled_is_taken_at_its_word(header: str) -> None:
    """Even when every new trace is recorded, the request is not; its children start a trace."""
    tracing, exporter = make(1.0)
    server = tracing.server_span("b", "direct", header, None)
    assert not server.is_recording()
    with Current(server):
        headers, span = headers_of(tracing)
    assert span is None
    found = HEADER.fullmatch(headers["traceparent"])
    assert found is not None
    assert found.group(1) not in (TRACE, TRACE.upper(), "0" * 32)
    assert found.group(3) == "02"
    assert finished(tracing, exporter) == []
