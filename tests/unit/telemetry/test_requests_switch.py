"""``telemetry: {metrics: false}``: no per-request layer on either side; `/metrics` still serves.

Real blocks on loopback: a caller block (``front``) calls ``w`` through its
`MeshClient`; then each block's ``/metrics`` and ``/v1/stats`` show what was
counted. With the switch on, both sides count and trace as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from eblocks import Block, Context, MeshClient, Message
from eblocks.errors import SpecError
from eblocks.runtime.instance import mesh_parts
from eblocks.runtime.state import StateDir
from eblocks.spec import MeshSpec, parse_spec
from eblocks.telemetry import Telemetry
from eblocks.telemetry.tracing import Tracing
from eblocks.testing import StaticResolver

HEAD = "apiVersion: eblocks/v1\nmesh: unit\nsecurity: {mtls: disable}\n"
BLOCKS = "blocks:\n  front: {handler: 't:front'}\n  w: {handler: 't:w'}\n  shop: {app: 't:shop'}\n"
SPEC = parse_spec(HEAD + BLOCKS, "unit.yaml")
REQUEST_FAMILIES = {"eblocks_requests", "eblocks_request_duration_seconds", "eblocks_retries"}


async def w(msg: Message) -> bytes:
    return msg.body.upper()


async def front(msg: Message, ctx: Context) -> bytes:
    return (await ctx.call("w", msg)).body


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def shop() -> web.Application:
    app = web.Application()
    app.router.add_get("/hello", _hello)
    return app


class Mesh:
    """Blocks of ``SPEC`` on loopback, each with the `Telemetry` that ``make`` builds."""

    def __init__(self, requests: bool, traced: bool = False) -> None:
        self.requests = requests
        self.exporters: dict[str, InMemorySpanExporter] | None = {} if traced else None
        self.resolver = StaticResolver()
        self.blocks: dict[str, Block] = {}
        self.session = aiohttp.ClientSession()

    async def start(self, name: str, handler: Any = None, *, app: Any = None) -> Block:
        instance = f"{name}-0"
        tracing = None
        if self.exporters is not None:
            exporter = self.exporters[name] = InMemorySpanExporter()
            tracing = Tracing.create(name, instance, sampling=1.0, exporter=exporter)
        tel = Telemetry(name, instance, tracing=tracing, requests=self.requests)
        client = MeshClient(SPEC, self.resolver, source=name, telemetry=tel)
        block = Block.in_mesh(name, handler, app=app, client=client, instance=instance)
        await block.start("127.0.0.1", 0)
        self.blocks[name] = block
        self.resolver.set(name, [f"127.0.0.1:{block.port}"])
        return block

    async def get(self, port: int, path: str) -> bytes:
        async with self.session.get(f"http://127.0.0.1:{port}{path}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.read()

    async def families(self, block: Block) -> dict[str, list[Any]]:
        text = (await self.get(block.admin_port, "/metrics")).decode()
        return {f.name: f.samples for f in text_string_to_metric_families(text)}

    async def close(self) -> None:
        await self.session.close()
        for block in self.blocks.values():
            await block.stop()


@pytest.fixture
async def mesh_off() -> AsyncIterator[Mesh]:
    mesh = Mesh(requests=False)
    try:
        for name, handler in (("w", w), ("front", front)):
            await mesh.start(name, handler)
        await mesh.start("shop", app=shop())
        yield mesh
    finally:
        await mesh.close()


async def _call_front(mesh: Mesh) -> None:
    client = MeshClient(SPEC, mesh.resolver, source="cli")  # no telemetry, as the CLI's
    async with client:
        for _ in range(3):
            assert (await client.call("front", Message(b"abc"))).body == b"ABC"


async def test_off_counts_no_request_on_either_side(mesh_off: Mesh) -> None:
    await _call_front(mesh_off)
    assert await mesh_off.get(mesh_off.blocks["shop"].port, "/hello") == b"hello"
    for name, block in mesh_off.blocks.items():
        assert not block.telemetry.requests
        families = await mesh_off.families(block)
        counted = [s.name for f in REQUEST_FAMILIES for s in families.get(f, [])]
        assert counted == [], f"{name} counted {counted}"
        assert families["eblocks_build_info"][0].value == 1  # /metrics still serves:
        assert families["process_cpu_seconds"][0].value > 0  # process metrics, gauges, hooks
        stats = orjson.loads(await mesh_off.get(block.admin_port, "/v1/stats"))
        assert (stats["inbound"]["edges"], stats["outbound"]["edges"]) == ([], [])


async def test_on_counts_and_traces_both_sides() -> None:
    mesh = Mesh(requests=True, traced=True)
    try:
        for name, handler in (("w", w), ("front", front)):
            await mesh.start(name, handler)
        await _call_front(mesh)
        front_families = await mesh.families(mesh.blocks["front"])
        w_families = await mesh.families(mesh.blocks["w"])
    finally:
        await mesh.close()  # flushes the spans
    counts = {
        (s.labels["direction"], s.labels["src_block"], s.labels["dst_block"]): s.value
        for families in (front_families, w_families)
        for s in families["eblocks_requests"]
        if s.name == "eblocks_requests_total"
    }
    assert counts == {
        ("inbound", "cli", "front"): 3,
        ("outbound", "front", "w"): 3,
        ("inbound", "front", "w"): 3,
    }
    assert mesh.exporters is not None
    spans = {name: e.get_finished_spans() for name, e in mesh.exporters.items()}
    assert [s.name for s in spans["w"]] == ["w direct"] * 3
    assert sorted(s.name for s in spans["front"]) == ["call w"] * 3 + ["front direct"] * 3
    traces = {name: {s.context.trace_id for s in found} for name, found in spans.items()}
    assert len(traces["w"]) == 3  # one trace per call, across both blocks
    assert traces["w"] == traces["front"]


def test_spec_switch_defaults_on_and_reaches_the_instance(tmp_path: Path) -> None:
    assert SPEC.telemetry.metrics is True
    spec = parse_spec(HEAD + "telemetry: {metrics: false}\n" + BLOCKS, "unit.yaml")
    assert spec.telemetry.metrics is False
    assert _instance_telemetry(SPEC, tmp_path).requests is True
    assert _instance_telemetry(spec, tmp_path).requests is False


def _instance_telemetry(spec: MeshSpec, tmp_path: Path) -> Telemetry:
    tel, auth, _client = mesh_parts(
        spec, "w", "w-0", StateDir(tmp_path), str(tmp_path / "mesh.yaml"), StaticResolver()
    )
    assert auth is None
    return tel


def _issues(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "mesh.yaml")
    return [(issue.path, issue.message) for issue in info.value.issues]


def test_off_refuses_what_only_the_layers_make() -> None:
    traced = "telemetry: {metrics: false, tracing: {exporter: console}}\n"
    ((path, message),) = _issues(HEAD + traced + BLOCKS)
    assert path == "telemetry"
    assert "set 'tracing.exporter: none' or 'metrics: true'" in message
    logged = "telemetry: {metrics: false}\ndefaults: {access_log: true}\n"
    logged += BLOCKS.replace("{handler: 't:w'}", "{handler: 't:w', access_log: true}")
    issues = _issues(HEAD + logged)
    assert [path for path, _ in issues] == ["defaults.access_log", "blocks.w.access_log"]
    assert all("'telemetry.metrics: false' leaves out" in message for _, message in issues)
    tracing = Tracing.create("w", "w-0", sampling=1.0, exporter=InMemorySpanExporter())
    try:
        with pytest.raises(ValueError, match="requests=False leaves out"):
            Telemetry("w", "w-0", requests=False, tracing=tracing)
    finally:
        tracing.shutdown()
