"""Traces across the mesh, started by an independent OpenTelemetry-instrumented aiohttp service.

The service is plain aiohttp with the OpenTelemetry SDK (no Eblocks): it opens
a server span, a client span, injects W3C ``traceparent`` and calls into the
mesh — a 3-stage pipeline, or a manager-worker pattern. Every block records
into an in-memory exporter; the spans of both sides form one connected trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_trace_id

from eblocks import Block, MeshClient, Message
from eblocks.message import PATTERN_HEADER, STAGE_HEADER
from eblocks.spec import parse_spec
from eblocks.telemetry import Telemetry
from eblocks.telemetry.tracing import Tracing, parse_traceparent
from eblocks.testing import StaticResolver
from eblocks.workload import relay

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults: {timeout: 10s}
telemetry: {tracing: {sampling: 1.0}}
blocks:
  clean: {handler: "t:clean"}
  tokenize: {handler: "t:tokenize"}
  count: {handler: "t:count"}
  boss: {}
  w: {handler: "t:w"}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
  pool:
    manager-worker: {manager: boss, worker: w, concurrency: 2}
""",
    "unit.yaml",
)


async def clean(msg: Message) -> bytes:
    return msg.body.strip().lower()


async def tokenize(msg: Message) -> bytes:
    return b",".join(msg.body.split())


async def count(msg: Message) -> bytes:
    return str(len(msg.body.split(b","))).encode()


async def w(msg: Message) -> bytes:
    return msg.body.upper()


class SharedExporter(InMemorySpanExporter):
    """One in-memory store for every block; a block's shutdown must not close it for the rest."""

    def shutdown(self) -> None:
        return None


class Mesh:
    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter
        self.resolver = StaticResolver()
        self.blocks: list[Block] = []

    async def start(self, name: str, handler: Any) -> Block:
        instance = f"{name}-{sum(b.name == name for b in self.blocks)}"
        tracing = Tracing.create(name, instance, sampling=0.0, exporter=self.exporter)
        tel = Telemetry(name, instance, tracing=tracing)
        client = MeshClient(SPEC, self.resolver, source=name, telemetry=tel)
        block = Block.in_mesh(name, handler, app=None, client=client, instance=instance)
        await block.start("127.0.0.1", 0)
        self.blocks.append(block)
        self.resolver.set(name, [f"127.0.0.1:{b.port}" for b in self.blocks if b.name == name])
        return block

    async def close(self) -> None:
        for block in self.blocks:
            await block.stop()  # shuts the providers down: every span is exported


class External:
    """An aiohttp service of its own, traced with the OpenTelemetry SDK, calling into the mesh."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("external-service")
        self.target = ""
        self.headers: dict[str, str] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def go(self, request: web.Request) -> web.Response:
        with self.tracer.start_as_current_span("GET /go", kind=SpanKind.SERVER):
            body = await request.read()
            with self.tracer.start_as_current_span("POST mesh", kind=SpanKind.CLIENT):
                headers = dict(self.headers)
                inject(headers)  # W3C traceparent of this client span
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(self.target, data=body, headers=headers) as resp,
                ):
                    return web.Response(status=resp.status, body=await resp.read())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/go", self.go)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/go"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.provider.shutdown()


@pytest.fixture
async def parts() -> AsyncIterator[tuple[Mesh, External]]:
    mesh, external = Mesh(SharedExporter()), External()
    await external.start()
    yield mesh, external
    await external.close()
    await mesh.close()


def assert_one_connected_trace(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    traces = {format_trace_id(s.context.trace_id) for s in spans}
    assert len(traces) == 1, traces
    ids = {s.context.span_id: s for s in spans}
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["GET /go"]
    for span in spans:
        if span.parent is not None:
            assert span.parent.span_id in ids, f"{span.name}: parent not in the trace"
    return {s.name: s for s in spans}


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None
    return next(s for s in spans if s.context.span_id == span.parent.span_id)


async def test_a_pipeline_joins_the_callers_trace(parts: tuple[Mesh, External]) -> None:
    mesh, external = parts
    first = await mesh.start("clean", clean)
    await mesh.start("tokenize", tokenize)
    await mesh.start("count", count)
    external.target = f"http://127.0.0.1:{first.port}/"
    external.headers = {PATTERN_HEADER: "ingest", STAGE_HEADER: "0"}
    async with aiohttp.ClientSession() as session, session.post(external.url, data=b" A b C ") as r:
        assert (r.status, await r.read()) == (200, b"3")
    await mesh.close()
    mesh.blocks.clear()
    spans = [*external.exporter.get_finished_spans(), *mesh.exporter.get_finished_spans()]
    names = assert_one_connected_trace(spans)
    assert set(names) == {
        "GET /go",
        "POST mesh",
        "clean ingest",
        "call tokenize",
        "tokenize ingest",
        "call count",
        "count ingest",
    }
    chain = ["count ingest", "call count", "tokenize ingest", "call tokenize", "clean ingest"]
    for child, parent in zip(chain, [*chain[1:], "POST mesh"], strict=True):
        assert parent_of(names[child], spans).name == parent
    server = names["tokenize ingest"]
    assert server.kind is SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["eblocks.pattern"] == "ingest"
    assert server.attributes["eblocks.stage"] == "1"
    assert server.attributes["eblocks.source"] == "clean"
    assert server.resource.attributes["service.name"] == "tokenize"
    call = names["call count"]
    assert call.kind is SpanKind.CLIENT
    assert call.attributes is not None
    assert call.attributes["eblocks.endpoint"] == "count-0"


async def test_a_manager_worker_pattern_joins_the_callers_trace(
    parts: tuple[Mesh, External],
) -> None:
    mesh, external = parts
    boss = await mesh.start("boss", relay)
    await mesh.start("w", w)
    await mesh.start("w", w)
    external.target = f"http://127.0.0.1:{boss.port}/"
    external.headers = {PATTERN_HEADER: "pool", STAGE_HEADER: "0"}
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(external.url, data=b"task") as resp:
                assert (resp.status, await resp.read()) == (200, b"TASK")
    await mesh.close()
    mesh.blocks.clear()
    spans = [*external.exporter.get_finished_spans(), *mesh.exporter.get_finished_spans()]
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert len(by_trace) == 2  # one trace per call of the external service
    workers = set()
    for trace in by_trace.values():
        names = assert_one_connected_trace(trace)
        assert set(names) == {"GET /go", "POST mesh", "boss pool", "call w", "w direct"}
        assert parent_of(names["w direct"], trace).name == "call w"
        assert parent_of(names["call w"], trace).name == "boss pool"
        workers.add(names["w direct"].resource.attributes["service.instance.id"])
    assert workers <= {"w-0", "w-1"}


async def test_unsampled_callers_are_not_recorded(parts: tuple[Mesh, External]) -> None:
    mesh, _ = parts
    block = await mesh.start("w", w)
    async with aiohttp.ClientSession() as session:
        headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
        async with session.post(f"http://127.0.0.1:{block.port}/", data=b"x", headers=headers):
            pass
        async with session.post(f"http://127.0.0.1:{block.port}/", data=b"y"):
            pass  # no parent, sampling 0: not recorded either
    await mesh.close()
    mesh.blocks.clear()
    assert mesh.exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01", False),
        ("garbage", False),
    ],
)
def test_traceparent_parsing(header: str, ok: bool) -> None:
    parsed = parse_traceparent(header, "vendor=x")
    assert (parsed is not None) == ok
    if parsed is not None:
        assert format_trace_id(parsed.trace_id) == header.split("-")[1]
        assert parsed.is_remote
        assert parsed.trace_state.to_header() == "vendor=x"
