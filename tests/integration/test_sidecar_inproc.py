"""The sidecar's pieces in one process, on loopback sockets: its error paths and its ports.

`Sidecar` in front of a small aiohttp app (or of nothing at all), a mesh client
whose resolver is static: each mesh error the proxy makes, the upstream port's
translation of a request into a mesh call, and the TCP splice.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from eblocks.block import Block, MeshClient
from eblocks.message import Message
from eblocks.sidecar.options import Upstream
from eblocks.sidecar.proxy import Sidecar
from eblocks.spec import parse_spec
from eblocks.spec.models import Defaults, resolve_settings
from eblocks.testing import StaticResolver

pytestmark = pytest.mark.integration

SPEC = """apiVersion: eblocks/v1
mesh: m
security: {mtls: disable}
defaults: {retries: {attempts: 1}}
blocks:
  web: {external: {command: [x], port: 1, upstreams: {store: 2}}}
  store: {handler: "h:store"}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), status=201, headers={"x-app": "1"})


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/slow", _slow)
    app.router.add_post("/echo", _echo)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _started(sidecar: Sidecar) -> Sidecar:
    await sidecar.open_upstreams()
    await sidecar.serve("127.0.0.1", 0)
    return sidecar


async def test_status_and_headers_of_the_app_pass_through(
    app_port: int, session: aiohttp.ClientSession
) -> None:
    sidecar = await _started(Sidecar("web", ("127.0.0.1", app_port)))
    try:
        url = f"http://127.0.0.1:{sidecar.block.port}/echo"
        async with session.post(url, data=b"abc") as resp:
            assert (resp.status, await resp.read(), resp.headers["x-app"]) == (201, b"abc", "1")
    finally:
        await sidecar.stop_block()
        await sidecar.close_upstreams()


async def test_the_admin_port_on_every_address_as_a_rendered_proxy_serves_it(
    app_port: int, session: aiohttp.ClientSession
) -> None:
    """``--admin-host '*'`` (a pod's proxy): probes on the pod IP, port-forward on loopback."""
    sidecar = Sidecar("web", ("127.0.0.1", app_port))
    await sidecar.serve("127.0.0.2", 0, admin_host="*")
    try:
        for host in ("127.0.0.2", "127.0.0.1"):  # the pod IP, and the pod's loopback
            async with session.get(f"http://{host}:{sidecar.block.admin_port}/readyz") as resp:
                assert resp.status == 200
        async with session.post(f"http://127.0.0.2:{sidecar.block.port}/echo", data=b"x") as resp:
            assert await resp.read() == b"x"
        with pytest.raises(aiohttp.ClientConnectionError):  # the mesh port: the pod IP only
            async with session.post(f"http://127.0.0.1:{sidecar.block.port}/echo", data=b"x"):
                pass
    finally:
        await sidecar.stop_block()
        await sidecar.close_upstreams()


async def test_an_app_that_refuses_gives_a_connect_error_naming_the_block(
    session: aiohttp.ClientSession,
) -> None:
    # a port bound but not listening refuses connections, and no one else (the proxy's
    # own port 0 included) can be given it while the test holds it
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        sidecar = await _started(Sidecar("web", ("127.0.0.1", closed.getsockname()[1])))
        try:
            async with session.get(f"http://127.0.0.1:{sidecar.block.port}/x") as resp:
                body = await resp.json()
        finally:
            await sidecar.stop_block()
            await sidecar.close_upstreams()
    assert resp.status == 502
    assert resp.headers["x-eblocks-error"] == "connect"
    assert resp.headers["x-eblocks-origin"] == "web"
    assert "refused the connection" in body["message"]


async def test_the_callers_deadline_bounds_the_wait_for_the_app(
    app_port: int, session: aiohttp.ClientSession
) -> None:
    sidecar = await _started(Sidecar("web", ("127.0.0.1", app_port)))
    try:
        url = f"http://127.0.0.1:{sidecar.block.port}/slow"
        async with session.get(url, headers={"x-eblocks-timeout-ms": "200"}) as resp:
            assert resp.status == 504
            assert resp.headers["x-eblocks-error"] == "timeout"
    finally:
        await sidecar.stop_block()
        await sidecar.close_upstreams()


async def test_a_silent_app_is_bounded_when_the_caller_gives_no_deadline(
    session: aiohttp.ClientSession,
) -> None:
    held: list[asyncio.StreamWriter] = []

    def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts the connection and never answers

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    settings = resolve_settings("web", None, Defaults(timeout=0.3))
    sidecar = await _started(Sidecar("web", ("127.0.0.1", port), settings=settings))
    try:
        async with session.get(f"http://127.0.0.1:{sidecar.block.port}/x") as resp:
            assert resp.status == 504
            assert resp.headers["x-eblocks-error"] == "timeout"
            assert "0.3s of silence" in (await resp.json())["message"]
    finally:
        await sidecar.stop_block()
        await sidecar.close_upstreams()
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_an_upstream_port_is_a_mesh_call_with_path_and_method(
    session: aiohttp.ClientSession,
) -> None:
    spec = parse_spec(SPEC)
    seen: list[Message] = []

    async def store(msg: Message, ctx: object) -> Message:
        seen.append(msg)
        return Message(b"stored", {"content-type": "text/plain", "x-store": "yes"})

    async with Block("store", store) as target:
        resolver = StaticResolver({"store": [f"127.0.0.1:{target.port}"]})
        client = MeshClient(spec, resolver, source="web")
        up = Upstream("store", _free_port())
        sidecar = Sidecar("web", ("127.0.0.1", 1), upstreams=(up,), client=client)
        await sidecar.open_upstreams()
        try:
            url = f"http://127.0.0.1:{up.port}/items/7?full=1"
            async with session.put(url, data=b"doc", headers={"x-eblocks-source": "forged"}) as r:
                assert (r.status, await r.read(), r.headers["x-store"]) == (200, b"stored", "yes")
        finally:
            await sidecar.close_upstreams()
    (msg,) = seen
    assert msg.body == b"doc"
    assert msg.headers["x-eblocks-path"] == "/items/7?full=1"
    assert msg.headers["x-eblocks-method"] == "PUT"
    assert msg.headers["x-eblocks-source"] == "web"  # the mesh says who calls, not the app


FAULTY = (
    SPEC
    + """\
policies:
  blocks:
    web:
      faults:
        - match: {methods: [PUT], path: {prefix: /echo}}
          abort: {percent: 100, status: 418}
"""
)


async def test_inbound_faults_match_the_request_the_program_is_asked_for(
    app_port: int, session: aiohttp.ClientSession
) -> None:
    """A mesh call is ``POST /``: the rule matches its ``x-eblocks-method`` and ``-path``."""
    client = MeshClient(parse_spec(FAULTY), StaticResolver({}), source="web")
    sidecar = await _started(Sidecar("web", ("127.0.0.1", app_port), client=client))
    url = f"http://127.0.0.1:{sidecar.block.port}/"
    try:
        call = {"x-eblocks-path": "/echo?x=1", "x-eblocks-method": "PUT"}
        async with session.post(url, data=b"a", headers=call) as resp:
            assert (resp.status, resp.headers["x-eblocks-error"]) == (418, "fault_injected")
        other = {"x-eblocks-path": "/echo", "x-eblocks-method": "POST"}
        async with session.post(url, data=b"a", headers=other) as resp:  # not the rule's method
            assert (resp.status, await resp.read()) == (201, b"a")
        async with session.put(url + "echo", data=b"a") as resp:  # a request made directly
            assert resp.status == 418
    finally:
        await sidecar.stop_block()
        await sidecar.close_upstreams()
        await client.aclose()


async def test_an_upstream_with_no_instance_answers_a_mesh_error(
    session: aiohttp.ClientSession,
) -> None:
    client = MeshClient(parse_spec(SPEC), StaticResolver({}), source="web")
    up = Upstream("store", _free_port())
    sidecar = Sidecar("web", ("127.0.0.1", 1), upstreams=(up,), client=client)
    await sidecar.open_upstreams()
    try:
        async with session.get(f"http://127.0.0.1:{up.port}/") as resp:
            assert resp.status == 503
            assert resp.headers["x-eblocks-error"] == "no_endpoints"
    finally:
        await sidecar.close_upstreams()


async def test_tcp_mode_splices_and_counts_a_connection() -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        line = await reader.readline()
        writer.write(line[::-1])
        writer.close()

    server = await asyncio.start_server(banner, "127.0.0.1", 0)
    app_port = server.sockets[0].getsockname()[1]
    sidecar = await _started(Sidecar("db", ("127.0.0.1", app_port), tcp=True))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.block.port)
        assert await reader.readline() == b"hello\n"
        writer.write(b"abc\n")
        assert await asyncio.wait_for(reader.read(), 5) == b"\ncba"
        writer.close()
        for _ in range(100):  # the proxy records the connection once both ends closed
            series = sidecar.block.telemetry.inbound.get("external", "tcp")
            if series.statuses.get(200):
                break
            await asyncio.sleep(0.02)
        assert series.statuses == {200: 1}
        assert sidecar.block.inflight == 0
    finally:
        await sidecar.stop_block()
        server.close()
        await server.wait_closed()
