"""Tracing with the OpenTelemetry SDK: a server span per inbound request, a client span per try.

Each instance has a `TracerProvider` of its own (never the process-global
one: tests run several blocks in one process), with the resource
``service.name=<block>``, ``service.instance.id=<instance>`` and the sampler
``ParentBased(TraceIdRatioBased(sampling))``: a caller's sampling decision
wins, a new trace is recorded with probability ``sampling``. Context crosses
hops in W3C ``traceparent``/``tracestate`` headers::

    caller span ─▶ [server span  <block> <route>]            inbound (eblocks.telemetry.inbound)
                      └─ [client span  call <target>] per try  outbound (eblocks.layers.telemetry)
                             └─ next block's server span ...

Exporters (``telemetry.tracing.exporter`` in the spec): ``otlp`` (OTLP/HTTP,
the optional ``eblocks[otlp]`` extra), ``console`` (stderr), ``file`` (one
JSON span per line in ``logs/<instance>.spans.jsonl``, read by ``eblocks
trace``). Spans leave through a batch processor's thread: exporting never
runs on the event loop.

`Tracing` makes its spans itself (`eblocks.telemetry.spans`, docs/decisions.md)
with the sampler's rules: a new trace is decided as ``TraceIdRatioBased``
decides (on a trace id drawn here), a child follows its parent. An unsampled
span (most of them) is only ids, with its trace's ``traceparent`` prefix at
hand; a recorded one is handed, ended, to the batch processor as the SDK's
`ReadableSpan`. The SDK keeps the provider (resource, processor, flush on
shutdown), the exporters and ``tracing.tracer`` for anyone's own spans.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
    TraceState,
    format_trace_id,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eblocks.errors import MissingExtraError
from eblocks.telemetry.current import current_span
from eblocks.telemetry.ids import span_hex, trace_hex
from eblocks.telemetry.spans import RecordedSpan, SpanSink, UnsampledSpan
from eblocks.telemetry.w3c import (
    EVEN,
    FLAGS,
    NEW_SAMPLED,
    NEW_UNSAMPLED,
    NEW_UNSAMPLED_SUFFIX,
    RANDOM,
    SAMPLED_CHILD,
    V00_LENGTH,
    caller_parts,
    span_context,
)

if TYPE_CHECKING:
    from eblocks.spec.models import TracingSpec

__all__ = [
    "OTLP_MISSING",
    "OTLP_MODULE",
    "JsonLinesSpanExporter",
    "Tracing",
    "current_trace_id",
    "parse_traceparent",
    "propagator",
    "traceparent",
    "tracing_from_spec",
]


_ROOT = Context()  # an empty context: no parent, whatever is current


def _span_id() -> int:
    """A recorded span's id (`SpanContext` takes an int; the hex comes from `ids`)."""
    return int(span_hex(), 16)


def propagator() -> TextMapPropagator:
    """W3C trace context (``traceparent``/``tracestate``), without the global composite's cost."""
    return TraceContextTextMapPropagator()


def current_trace_id() -> str | None:
    """The trace id of the span current in this task, if one is recording."""
    span = current_span()
    if type(span) is UnsampledSpan:
        return span.prefix[3:35]
    context = span.get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else None


class JsonLinesSpanExporter(SpanExporter):
    """Append each finished span as one JSON line (OpenTelemetry's own JSON form)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(span.to_json(indent=None) + "\n" for span in spans)
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write(data)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class Tracing:
    """One instance's tracer and provider; ``shutdown()`` flushes what is pending.

    With a ``sink`` (what `create` passes: the provider's sampler is
    ``ParentBased(TraceIdRatioBased(ratio))`` and ``sink`` holds its span
    processor), every span is made here: new traces decided with the
    sampler's rule, recorded spans as `RecordedSpan` handed to the processor
    when they end. Without one, spans that may be recorded come from the
    provider's tracer (its sampler, the SDK's span; ``ratio`` is unused);
    children of unsampled parents are made here either way.
    """

    def __init__(
        self, provider: TracerProvider, sink: SpanSink | None = None, ratio: float = 1.0
    ) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("eblocks")
        self.propagator = propagator()
        self._sink = sink
        # TraceIdRatioBased's bound on a trace id's 64 low-order bits, as 16 hex digits; at a
        # ratio of 1 it is 2**64, above every id: "g" sorts after every hex digit string
        bound = TraceIdRatioBased.get_bound_for_rate(ratio)
        self._bound_hex = f"{bound:016x}" if bound < 1 << 64 else "g"

    def start_span(self, name: str, kind: SpanKind, context: Context | None = None) -> Span:
        """A span under ``context`` (default: the current one), not yet current.

        The sampler is ``ParentBased``: a child of a sampled parent is
        recorded, a child of an unsampled one never is — that span (most of
        them, at a low ratio) is only new ids in the parent's trace.
        """
        parent = current_span() if context is None else get_current_span(context)
        if type(parent) is UnsampledSpan:
            return parent.child()
        ctx = parent.get_span_context()
        if not ctx.is_valid:
            return self._new_trace(name, kind)
        if not ctx.trace_flags.sampled:
            flags = TraceFlags(ctx.trace_flags & RANDOM)
            state = ctx.trace_state.to_header() if ctx.trace_state else None
            return UnsampledSpan(ctx.trace_id, flags, f"-{flags:02x}", state, ctx.trace_state)
        if self._sink is None:
            return self.tracer.start_span(name, context, kind, record_exception=False)
        return _recorded(self._sink, name, kind, ctx, _span_id())

    def client_span(self, name: str, headers: dict[str, str]) -> Span | None:
        """A client span under the current span: its W3C headers set in ``headers``.

        The span itself only when it is recorded. An unsampled one (most of
        them) is only its headers: nobody needs it current nor ended, so under
        an unsampled span of ours, or starting a trace it does not record, not
        even its object is made.
        """
        parent = current_span()
        if type(parent) is UnsampledSpan:
            headers["traceparent"] = parent.prefix + span_hex() + parent.suffix
            if parent.state is not None:
                headers["tracestate"] = parent.state
            return None
        if self._sink is not None and parent is INVALID_SPAN:
            trace = trace_hex()
            if trace[16:] >= self._bound_hex:  # a new trace, not recorded
                headers["traceparent"] = f"00-{trace}-{span_hex()}{NEW_UNSAMPLED_SUFFIX}"
                return None
            span: Span = self._root(self._sink, name, SpanKind.CLIENT, trace)
        else:
            span = self.start_span(name, SpanKind.CLIENT)
        _stamp(headers, span)
        return span if span.is_recording() else None

    def server_span(
        self, block: str, route: str, traceparent: str | None, tracestate: str | None
    ) -> Span:
        """The span of a request to ``route`` of ``block`` that arrived with these W3C headers.

        As the propagator's ``extract``, cheaper (`w3c.caller_parts`). A
        version-00 ``traceparent`` whose flags say "not sampled", without
        ``tracestate`` (most requests, at a low ratio), is not parsed at all:
        the span keeps the header and parses it the first time its ids are
        asked for (a child's headers, the access log's trace id); a leaf
        block never asks (`UnsampledSpan.of_caller`). The span's name
        (``<block> <route>``) is only made for a span that has one to show.
        """
        if traceparent is None:
            return self._new_trace(f"{block} {route}", SpanKind.SERVER)
        if tracestate is None and len(traceparent) == V00_LENGTH and traceparent[54] in EVEN:
            # version 00, flags without "sampled" (`w3c.EVEN`)
            return UnsampledSpan.of_caller(traceparent)  # parsed if its ids are ever needed
        parts = caller_parts(traceparent)
        if parts is None:
            return self._new_trace(f"{block} {route}", SpanKind.SERVER)
        trace, span, flags = parts
        trace_flags, child_flags, suffix = FLAGS[flags]
        state = TraceState.from_header([tracestate]) if tracestate else None
        if suffix is not None:  # the caller's trace, not recorded: its ids only
            header = state.to_header() if state else None
            return UnsampledSpan(trace, child_flags, suffix, header, state, f"00-{trace}-")
        parent = span_context(int(trace, 16), int(span, 16), True, trace_flags, state)
        name = f"{block} {route}"
        if self._sink is None:
            context = set_span_in_context(NonRecordingSpan(parent))
            return self.tracer.start_span(name, context, SpanKind.SERVER, record_exception=False)
        return _recorded(self._sink, name, SpanKind.SERVER, parent, _span_id())

    def _new_trace(self, name: str, kind: SpanKind) -> Span:
        """The root span of a new trace, recorded with probability ``ratio``."""
        if self._sink is None:
            return self.tracer.start_span(name, _ROOT, kind, record_exception=False)
        return self._root(self._sink, name, kind, trace_hex())

    def _root(self, sink: SpanSink, name: str, kind: SpanKind, trace: str) -> Span:
        """The root span of the trace ``trace`` (hex), decided as ``TraceIdRatioBased`` does.

        Recorded when the trace id's 64 low-order bits are under the bound:
        compared as hex, digit strings of the same length compare as their
        numbers do.
        """
        if trace[16:] < self._bound_hex:
            own = span_context(int(trace, 16), _span_id(), False, NEW_SAMPLED, None)
            return RecordedSpan(sink, name, own, None, kind)
        return UnsampledSpan(trace, NEW_UNSAMPLED, NEW_UNSAMPLED_SUFFIX, None)

    @classmethod
    def create(
        cls,
        block: str,
        instance: str,
        *,
        sampling: float,
        exporter: SpanExporter,
        delay: float = 0.5,
    ) -> Tracing:
        resource = Resource.create({"service.name": block, "service.instance.id": instance})
        limits = SpanLimits()
        provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(sampling)),
            span_limits=limits,
        )
        processor = BatchSpanProcessor(exporter, schedule_delay_millis=delay * 1000)
        provider.add_span_processor(processor)  # the tracer's spans, and shutdown's flush
        scope = InstrumentationScope("eblocks")  # the scope of provider.get_tracer("eblocks")
        info = getattr(provider.get_tracer("eblocks"), "instrumentation_info", None)
        return cls(provider, SpanSink(processor, resource, scope, limits, info), sampling)

    def shutdown(self) -> None:
        self.provider.shutdown()


def _recorded(
    sink: SpanSink, name: str, kind: SpanKind, parent: SpanContext, span_id: int
) -> RecordedSpan:
    """A recorded child of the sampled span ``parent`` (its trace id, state, random flag)."""
    flags = SAMPLED_CHILD[parent.trace_flags]
    own = span_context(parent.trace_id, span_id, False, flags, parent.trace_state)
    return RecordedSpan(sink, name, own, parent, kind)


def parse_traceparent(value: str, tracestate: str | None = None) -> SpanContext | None:
    """A caller's span context from W3C ``traceparent`` (None when malformed: a new trace)."""
    parts = caller_parts(value)
    if parts is None:
        return None
    trace, span, flags = parts
    state = TraceState.from_header([tracestate]) if tracestate else None
    return SpanContext(int(trace, 16), int(span, 16), True, TraceFlags(int(flags, 16)), state)


def traceparent(span: Span) -> dict[str, str]:
    """The W3C headers that make ``span`` the parent downstream (``propagator.inject``, cheaper)."""
    headers: dict[str, str] = {}
    _stamp(headers, span)
    return headers


def _stamp(headers: dict[str, str], span: Span) -> None:
    """Set ``traceparent`` (and ``tracestate``, if any) of ``span`` in ``headers``."""
    if type(span) is UnsampledSpan:
        headers["traceparent"] = f"{span.prefix}{span.get_span_context().span_id:016x}{span.suffix}"
        if span.state is not None:
            headers["tracestate"] = span.state
        return
    ctx = span.get_span_context()
    headers["traceparent"] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    if ctx.trace_state:
        headers["tracestate"] = ctx.trace_state.to_header()


OTLP_MODULE = "opentelemetry.exporter.otlp.proto.http"
OTLP_MISSING = (
    "telemetry.tracing.exporter 'otlp' needs the OTLP exporter, which is not installed: "
    "pip install 'eblocks[otlp]' (opentelemetry-exporter-otlp-proto-http)"
)


def tracing_from_spec(
    spec: TracingSpec, block: str, instance: str, logs: Path | None
) -> Tracing | None:
    """The instance's tracing as the spec sets it (None: tracing off)."""
    if spec.exporter == "none":
        return None
    exporter: SpanExporter
    if spec.exporter == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)
    elif spec.exporter == "file":
        folder = logs if logs is not None else Path(".")
        exporter = JsonLinesSpanExporter(folder / f"{instance}.spans.jsonl")
    else:
        exporter = _otlp(spec.endpoint)
    return Tracing.create(block, instance, sampling=spec.sampling, exporter=exporter)


def _otlp(endpoint: str | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
            OTLPSpanExporter,
        )
    except ImportError as exc:
        raise MissingExtraError(OTLP_MISSING) from exc
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    return exporter
