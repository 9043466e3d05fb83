"""`Block` in process: a real server on 127.0.0.1, port 0, called over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from eblocks import Block, Context, MeshClient, Message, PortInUseError, mesh_client
from eblocks.block import server
from eblocks.message import (
    DEADLINE_HEADER,
    ERROR_HEADER,
    ORIGIN_HEADER,
    PATTERN_HEADER,
    REQUEST_ID_HEADER,
    STAGE_HEADER,
)
from eblocks.patterns import Plan
from eblocks.spec import parse_spec
from eblocks.spec.models import Defaults, resolve_settings


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def echo(msg: Message, ctx: Context) -> Message:
    return Message(msg.body, {"x-request-seen": ctx.request_id})


def url(block: Block, path: str = "/") -> str:
    return f"http://127.0.0.1:{block.port}{path}"


def admin(block: Block, path: str) -> str:
    return f"http://127.0.0.1:{block.admin_port}{path}"


def failing(exc: Exception) -> Callable[[Message], Any]:
    def handle(msg: Message) -> bytes:
        raise exc

    return handle


async def test_echo_over_one_keep_alive_connection() -> None:
    created, reused = [], []

    async def on_create(*_: object) -> None:
        created.append(1)

    async def on_reuse(*_: object) -> None:
        reused.append(1)

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    trace.on_connection_reuseconn.append(on_reuse)
    async with (
        Block("echo", echo) as block,
        aiohttp.ClientSession(trace_configs=[trace]) as s,
    ):
        bodies = []
        for i in range(3):
            headers = {REQUEST_ID_HEADER: f"r{i}"}
            async with s.post(url(block), data=f"hello {i}", headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["x-request-seen"] == f"r{i}"
                bodies.append(await resp.read())
    assert bodies == [b"hello 0", b"hello 1", b"hello 2"]
    assert (len(created), len(reused)) == (1, 2)


async def test_reply_headers_keep_handler_headers_and_drop_routing_ones(
    session: aiohttp.ClientSession,
) -> None:
    async def handle(msg: Message) -> Message:
        return Message(b"{}", {"x-custom": "1", PATTERN_HEADER: "p", STAGE_HEADER: "0"})

    async with Block("b", handle) as block, session.post(url(block), data=b"") as resp:
        assert resp.status == 200
        assert resp.headers["x-custom"] == "1"
        assert resp.headers["content-type"] == "application/octet-stream"
        assert PATTERN_HEADER not in resp.headers
        assert STAGE_HEADER not in resp.headers


async def test_oversized_body_is_413(session: aiohttp.ClientSession) -> None:
    settings = resolve_settings("echo", None, Defaults(max_body=1024))
    async with Block("echo", echo, settings=settings) as block:
        async with session.post(url(block), data=b"x" * 1024) as resp:
            assert resp.status == 200
        async with session.post(url(block), data=b"x" * 5000) as resp:
            assert resp.status == 413
            assert resp.headers[ERROR_HEADER] == "too_large"
            assert resp.headers[ORIGIN_HEADER] == "echo"
            body = await resp.json()
    assert body["max_body"] == 1024


async def test_malformed_timeout_header_is_400(session: aiohttp.ClientSession) -> None:
    async with (
        Block("echo", echo) as block,
        session.post(url(block), data=b"x", headers={DEADLINE_HEADER: "soon"}) as resp,
    ):
        assert resp.status == 400
        assert resp.headers[ERROR_HEADER] == "bad_request"
        assert "x-eblocks-timeout-ms must be an integer" in (await resp.json())["message"]


async def test_passed_deadline_is_504_without_running_the_handler(
    session: aiohttp.ClientSession,
) -> None:
    ran: list[bool] = []

    async def handle(msg: Message) -> None:
        ran.append(True)

    async with (
        Block("b", handle) as block,
        session.post(url(block), data=b"x", headers={DEADLINE_HEADER: "0"}) as resp,
    ):
        assert resp.status == 504
        assert resp.headers[ERROR_HEADER] == "timeout"
    assert ran == []


async def test_malformed_http_is_400() -> None:
    async with Block("echo", echo) as block:
        reader, writer = await asyncio.open_connection("127.0.0.1", block.port)
        try:
            writer.write(b"NOT HTTP \x00\x01\r\n\r\n")
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()
    assert status_line.split()[1] == b"400"


async def test_raising_handler_is_500_naming_the_block(session: aiohttp.ClientSession) -> None:
    async with (
        Block("risk", failing(ValueError("secret internals"))) as block,
        session.post(url(block), data=b"x") as resp,
    ):
        assert resp.status == 500
        assert resp.headers[ERROR_HEADER] == "handler"
        assert resp.headers[ORIGIN_HEADER] == "risk"
        text = await resp.text()
    body = orjson.loads(text)
    assert body["block"] == "risk"
    assert body["exception"] == "ValueError"
    assert "pattern" not in body
    assert "Traceback" not in text


async def test_raising_handler_in_a_pattern_names_pattern_and_stage(
    session: aiohttp.ClientSession,
) -> None:
    plan = Plan({"ingest": ("clean", "risk")})
    headers = {PATTERN_HEADER: "ingest", STAGE_HEADER: "1"}
    async with (
        Block("risk", failing(RuntimeError("boom")), plan=plan) as block,
        session.post(url(block), data=b"x", headers=headers) as resp,
    ):
        assert resp.status == 500
        text = await resp.text()
    body = orjson.loads(text)
    assert (body["block"], body["pattern"], body["stage"]) == ("risk", "ingest", 1)
    assert body["message"].startswith("handler failed in stage 1 (risk) of pattern 'ingest'")
    assert "Traceback" not in text


async def test_wrong_stage_tag_is_400(session: aiohttp.ClientSession) -> None:
    plan = Plan({"ingest": ("clean", "risk")})
    headers = {PATTERN_HEADER: "ingest", STAGE_HEADER: "0"}
    async with (
        Block("risk", echo, plan=plan) as block,
        session.post(url(block), data=b"x", headers=headers) as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["message"] == "stage 0 of pattern 'ingest' is not block 'risk'"


async def test_health_and_readiness_on_the_admin_port(session: aiohttp.ClientSession) -> None:
    async with Block("echo", echo, instance="echo-7") as block:
        assert block.admin_port not in (0, block.port)
        async with session.get(admin(block, "/healthz")) as resp:
            assert resp.status == 200
            health = await resp.json()
        async with session.get(admin(block, "/readyz")) as resp:
            assert resp.status == 200
            ready = await resp.json()
    assert (health["status"], health["block"], health["instance"]) == ("ok", "echo", "echo-7")
    assert ready == {"ready": True, "block": "echo", "instance": "echo-7", "inflight": 0}


async def test_admin_port_on_every_address_while_the_pm_keeps_its_own() -> None:
    """``admin_host="*"`` (a rendered pod's): probes on the pod IP, port-forward on loopback."""
    block = Block("echo", echo)
    await block.start("127.0.0.2", 0, admin_host="*")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            for host in ("127.0.0.2", "127.0.0.1"):  # the pod IP, and the pod's loopback
                async with s.get(f"http://{host}:{block.admin_port}/readyz") as resp:
                    assert resp.status == 200
            async with s.post(f"http://127.0.0.2:{block.port}/", data=b"hi") as resp:
                assert await resp.read() == b"hi"
            with pytest.raises(aiohttp.ClientConnectionError):  # the PM is on 127.0.0.2 only
                async with s.post(f"http://127.0.0.1:{block.port}/", data=b"hi"):
                    pass
    finally:
        await block.stop()


async def test_graceful_drain(session: aiohttp.ClientSession) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(msg: Message) -> bytes:
        entered.set()
        await release.wait()
        return b"finished " + msg.body

    block = Block("slow", slow)
    await block.start()
    stopping: asyncio.Task[None] | None = None
    try:
        request = asyncio.create_task(session.post(url(block), data=b"work"))
        await entered.wait()
        stopping = asyncio.create_task(block.stop())
        await asyncio.sleep(0)  # let stop() take its first step: not ready any more
        assert not block.ready
        async with session.get(admin(block, "/readyz")) as probe:
            assert probe.status == 503
            assert (await probe.json())["inflight"] == 1
        assert not stopping.done()
        release.set()
        async with await request as resp:
            assert resp.status == 200
            assert await resp.read() == b"finished work"
        await stopping
    finally:
        release.set()
        if stopping is None:
            await block.stop()
        elif not stopping.done():
            await stopping
    with pytest.raises(aiohttp.ClientConnectionError):
        await session.post(url(block), data=b"late")


async def test_port_in_use_is_named_and_leaves_nothing_running() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        settings = dataclasses.replace(resolve_settings("b", None, Defaults()), port=port)
        block = Block("b", echo, settings=settings)
        with pytest.raises(PortInUseError, match=f"block 'b': port 127.0.0.1:{port}"):
            await block.start()
        assert not block.ready
        with pytest.raises(ConnectionRefusedError):  # the admin port was closed again
            await asyncio.open_connection("127.0.0.1", block.admin_port)
    finally:
        taken.close()


async def test_context_carries_the_request_headers(session: aiohttp.ClientSession) -> None:
    seen = SimpleNamespace(ctx=None)

    async def handle(msg: Message, ctx: Context) -> None:
        seen.ctx = ctx

    headers = {REQUEST_ID_HEADER: "req-9", "idempotency-key": "doc-9", DEADLINE_HEADER: "5000"}
    async with (
        Block("b", handle, instance="b-1") as block,
        session.post(url(block), data=b"", headers=headers) as resp,
    ):
        assert resp.status == 200
    ctx = seen.ctx
    assert isinstance(ctx, Context)
    assert (ctx.block, ctx.instance, ctx.request_id, ctx.idempotency_key) == (
        "b",
        "b-1",
        "req-9",
        "doc-9",
    )
    assert ctx.deadline is not None
    assert ctx.pattern is None


def test_block_needs_exactly_one_of_handler_or_app() -> None:
    with pytest.raises(ValueError, match="exactly one of handler=, app= or socket="):
        Block("b")


async def test_serves_an_aiohttp_app(session: aiohttp.ClientSession) -> None:

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.match_info['name']}")

    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    async with Block("web", app=app) as block:
        async with session.get(url(block, "/hello/eblocks")) as resp:
            assert resp.status == 200
            assert await resp.text() == "hello eblocks"
        async with session.get(admin(block, "/readyz")) as resp:
            assert (await resp.json())["inflight"] == 0


async def test_an_app_block_calls_the_mesh_through_mesh_client(
    session: aiohttp.ClientSession, local_mesh: Callable[..., Any]
) -> None:
    spec = parse_spec(
        "apiVersion: eblocks/v1\nmesh: m\nblocks:\n  web: {app: 'x:y'}\n  upper: {handler: 'x:y'}\n"
    )

    async def upper(msg: Message) -> bytes:
        return msg.body.upper()

    mesh = await local_mesh(spec, {"upper": upper})

    async def shout(request: web.Request) -> web.Response:
        reply = await mesh_client(request.app).call("upper", Message(await request.read()))
        return web.Response(body=reply.body)

    app = web.Application()
    app.router.add_post("/shout", shout)
    client = MeshClient(spec, mesh.resolver, source="web")
    async with (
        Block.in_mesh("web", None, app=app, client=client) as block,
        session.post(url(block, "/shout"), data=b"hi") as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == b"HI"


def test_mesh_client_names_an_app_outside_a_mesh() -> None:
    with pytest.raises(RuntimeError, match="not served by a block in a mesh"):
        mesh_client(web.Application())


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outside client that connects and says nothing cannot hold the port (it stayed an
    hour: aiohttp's default keep-alive)."""
    monkeypatch.setattr(server, "IDLE", 0.3)

    async def echo(msg: Message) -> bytes:
        return msg.body

    async with Block("quiet", echo) as block:
        reader, writer = await asyncio.open_connection("127.0.0.1", block.port)
        try:
            began = time.monotonic()
            assert await asyncio.wait_for(reader.read(1), timeout=10) == b""  # closed by it
            assert time.monotonic() - began < 5
        finally:
            writer.close()


async def test_a_body_that_stalls_is_refused_with_408_after_the_blocks_timeout() -> None:
    """Headers, then 3 of the 100 bytes promised: answered within the block's timeout
    (it waited for ever, holding the request in flight)."""

    async def echo(msg: Message) -> bytes:
        return msg.body

    settings = resolve_settings("slowbody", None, Defaults(timeout=0.3, drain=0.5))
    async with Block("slowbody", echo, settings=settings) as block:
        reader, writer = await asyncio.open_connection("127.0.0.1", block.port)
        try:
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        finally:
            writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"x-eblocks-error: request_timeout" in head.lower()
