"""One trace across processes: an OpenTelemetry-instrumented aiohttp service calls a real mesh.

The service (plain aiohttp + the OpenTelemetry SDK, no Eblocks) runs in the
test process with an in-memory exporter; the mesh runs as processes started by
`eblocks up` with ``exporter: file``, each writing its spans under the state
dir (mTLS between the blocks; the entry block also takes the service's
plaintext). The spans of both sides share one trace id and link parent to
child, and `eblocks trace ID` draws them as one tree.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from eblocks.message import PATTERN_HEADER, STAGE_HEADER
from eblocks.telemetry.traces import Span, read_spans

from .helpers import Sandbox, wait_for

pytestmark = pytest.mark.integration

SPEC = """\
apiVersion: eblocks/v1
mesh: traced
defaults: {timeout: 10s, drain: 2s}
telemetry: {tracing: {sampling: 0.0, exporter: file}}
blocks:
  clean: {handler: handlers:clean, security: {mtls: permissive}}  # the external caller: plaintext
  tokenize: {handler: handlers:tokenize}
  count: {handler: handlers:count}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
"""
MESH_SPANS = {
    "clean ingest",
    "call tokenize",
    "tokenize ingest",
    "call count",
    "count ingest",
}


async def _call_through_external_service(target: str) -> tuple[InMemorySpanExporter, bytes]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("external-service")

    async def go(request: web.Request) -> web.Response:
        with tracer.start_as_current_span("GET /go", kind=SpanKind.SERVER):
            body = await request.read()
            with tracer.start_as_current_span("POST mesh", kind=SpanKind.CLIENT):
                headers = {PATTERN_HEADER: "ingest", STAGE_HEADER: "0"}
                inject(headers)
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(target, data=body, headers=headers) as resp,
                ):
                    return web.Response(status=resp.status, body=await resp.read())

    app = web.Application()
    app.router.add_post("/go", go)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/go"
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as s, s.post(url, data=b"A fox") as r:
            assert r.status == 200, await r.text()
            reply = await r.read()
    finally:
        await runner.cleanup()
        provider.shutdown()
    return exporter, reply


def test_one_trace_from_an_external_service_through_the_pipeline(sandbox: Sandbox) -> None:
    folder = sandbox.copy_textpipe().parent
    spec = folder / "traced.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    clean = next(r for r in sandbox.instances("traced") if r["block"] == "clean")
    exporter, reply = asyncio.run(
        _call_through_external_service(f"http://{clean['host']}:{clean['port']}/")
    )
    assert b'"words"' in reply
    external = list(exporter.get_finished_spans())
    trace_id = format_trace_id(external[0].context.trace_id)
    logs = sandbox.mesh_dir("traced") / "logs"

    def mesh_spans() -> list[Span] | None:
        spans = [s for s in read_spans(logs) if s.trace_id == trace_id]
        return spans if {s.name for s in spans} >= MESH_SPANS else None

    spans = wait_for(mesh_spans, timeout=30, what="every block's spans in its spans file")
    ids = {s.span_id for s in spans} | {format_span_id(s.context.span_id) for s in external}
    mesh = {s.name: s for s in read_spans(logs) if s.trace_id == trace_id}
    assert set(mesh) == MESH_SPANS  # sampled because the caller sampled (sampling 0 here)
    for span in mesh.values():
        assert span.parent_id in ids, f"{span.name}: its parent is not in the trace"
    client = next(s for s in external if s.name == "POST mesh")
    assert mesh["clean ingest"].parent_id == format_span_id(client.context.span_id)
    assert mesh["count ingest"].parent_id == mesh["call count"].span_id
    assert mesh["tokenize ingest"].service == "tokenize"

    drawn = sandbox.cmd("trace", trace_id)
    assert drawn.returncode == 0, str(drawn)
    lines = drawn.stdout.splitlines()
    assert lines[0].startswith("(parent ")  # the external service's span is not in the files
    assert lines[1].startswith("clean ingest [server] clean-0")
    assert lines[-1].startswith("        count ingest [server] count-0")
    listing = sandbox.cmd("trace")
    assert listing.returncode == 0, str(listing)
    assert trace_id in listing.stdout
    malformed = sandbox.cmd("trace", trace_id[:8])  # a prefix is no trace id
    assert malformed.returncode == 1
    assert f"'{trace_id[:8]}' is not a trace id" in malformed.output, str(malformed)
    unknown = sandbox.cmd("trace", "0" * 31 + "1")
    assert unknown.returncode == 1
    assert "not sampled?" in " ".join(unknown.output.split()), str(unknown)
