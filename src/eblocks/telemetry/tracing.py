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
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
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

if TYPE_CHECKING:
    from eblocks.spec.models import TracingSpec

__all__ = [
    "JsonLinesSpanExporter",
    "Tracing",
    "current_trace_id",
    "parse_traceparent",
    "propagator",
    "traceparent",
    "tracing_from_spec",
]


_ROOT = Context()  # an empty context: no parent, whatever is current


def propagator() -> TextMapPropagator:
    """W3C trace context (``traceparent``/``tracestate``), without the global composite's cost."""
    return TraceContextTextMapPropagator()


def current_trace_id() -> str | None:
    """The trace id of the span current in this task, if one is recording."""
    context = get_current_span().get_span_context()
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
    """One instance's tracer and provider; ``shutdown()`` flushes what is pending."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("eblocks")
        self.propagator = propagator()
        self._ids = random.Random()  # span ids, as the SDK's RandomIdGenerator (not secrets)

    def start_span(self, name: str, kind: SpanKind, context: Context | None = None) -> Span:
        """A span under ``context`` (default: the current one), not yet current.

        The sampler is ``ParentBased``, so a child of an unsampled parent is
        never recorded: that span (most of them, at a low ratio) is made here
        without the SDK's sampling path — same trace id and flags, a new id.
        """
        parent = get_current_span(context).get_span_context()
        if parent.is_valid and not parent.trace_flags.sampled:
            span_id = self._ids.getrandbits(64) or 1
            own = SpanContext(
                parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state
            )
            return NonRecordingSpan(own)
        return self.tracer.start_span(name, context=context, kind=kind, record_exception=False)

    def server_span(self, name: str, traceparent: str | None, tracestate: str | None) -> Span:
        """The span of a request that arrived with these W3C headers (``extract``, cheaper)."""
        parent = parse_traceparent(traceparent, tracestate) if traceparent else None
        if parent is None:
            return self.start_span(name, SpanKind.SERVER, _ROOT)
        context = set_span_in_context(NonRecordingSpan(parent))
        return self.start_span(name, SpanKind.SERVER, context)

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
        provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(sampling))
        )
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=delay * 1000)
        )
        return cls(provider)

    def shutdown(self) -> None:
        self.provider.shutdown()


def parse_traceparent(value: str, tracestate: str | None = None) -> SpanContext | None:
    """A caller's span context from W3C ``traceparent`` (None when malformed: a new trace)."""
    parts = value.strip().split("-")
    if (
        len(parts) < 4
        or len(parts[0]) != 2
        or parts[0] == "ff"
        or (parts[0] == "00" and len(parts) != 4)
    ):
        return None
    version, trace, span, flags = parts[:4]
    if len(trace) != 32 or len(span) != 16 or len(flags) != 2:
        return None
    try:
        trace_id, span_id, trace_flags = int(trace, 16), int(span, 16), int(flags, 16)
        int(version, 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    return SpanContext(trace_id, span_id, True, TraceFlags(trace_flags), state)


def traceparent(span: Span) -> dict[str, str]:
    """The W3C headers that make ``span`` the parent downstream (``propagator.inject``, cheaper)."""
    ctx = span.get_span_context()
    headers = {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"}
    if ctx.trace_state:
        headers["tracestate"] = ctx.trace_state.to_header()
    return headers


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
        raise ImportError(
            "telemetry.tracing.exporter 'otlp' needs the OTLP exporter: "
            "pip install 'eblocks[otlp]' (opentelemetry-exporter-otlp-proto-http)"
        ) from exc
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    return exporter
