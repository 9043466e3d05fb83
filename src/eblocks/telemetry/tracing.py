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

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.propagate import get_global_textmap
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
from opentelemetry.trace import Tracer, format_trace_id, get_current_span

if TYPE_CHECKING:
    from eblocks.spec.models import TracingSpec

__all__ = [
    "JsonLinesSpanExporter",
    "Tracing",
    "current_trace_id",
    "propagator",
    "tracing_from_spec",
]


def propagator() -> TextMapPropagator:
    """W3C trace context + baggage (OpenTelemetry's default global propagator)."""
    return get_global_textmap()


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
