"""`eblocks proxy`: programs that know nothing of Eblocks, put in the mesh by the sidecar.

Real processes on loopback: a plain aiohttp server and a banner server
(server speaks first) run behind `eblocks proxy`, alone and as ``external``
blocks of a mesh that `eblocks up` runs with mTLS on (the default).
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import psycopg
import pytest

from eblocks.bench.sidecars import nginx_conf
from eblocks.telemetry.traces import Span, read_spans

from .helpers import Sandbox, wait_for

pytestmark = pytest.mark.integration

APP = r'''
"""A plain aiohttp server: no Eblocks import anywhere."""
import argparse, asyncio, hashlib, os, signal, sys
from pathlib import Path
from aiohttp import ClientSession, WSMsgType, web

async def hello(request):
    return web.json_response({"path": request.path_qs, "method": request.method,
                              "peer": request.headers.get("x-eblocks-peer"),
                              "traceparent": request.headers.get("traceparent")})

async def digest(request):
    h, n = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        h.update(chunk)
        n += len(chunk)
    return web.json_response({"bytes": n, "sha256": h.hexdigest()})

async def stream(request):
    """Echo each chunk as it arrives: proves nothing in between waits for the whole body."""
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    async for chunk in request.content.iter_any():
        await resp.write(chunk)
    await resp.write_eof()
    return resp

async def big(request):
    n, sent = int(request.query["n"]), 0
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    block = bytes(range(256)) * 256
    while sent < n:
        part = block[: min(len(block), n - sent)]
        await resp.write(part)
        sent += len(part)
    await resp.write_eof()
    return resp

async def ws(request):
    sock = web.WebSocketResponse(protocols=("echo",))
    await sock.prepare(request)
    async for msg in sock:
        if msg.type is WSMsgType.TEXT:
            await sock.send_str("echo:" + msg.data)
        elif msg.type is WSMsgType.BINARY:
            await sock.send_bytes(msg.data[::-1])
    return sock

async def call(request):
    up = os.environ["EBLOCKS_UPSTREAM_" + request.query["to"].upper()]
    async with ClientSession() as s:
        async with s.request(request.query.get("method", "GET"),
                             f"http://{up}{request.query.get('path', '/')}") as r:
            return web.Response(status=r.status, body=await r.read(),
                                content_type="application/json")

async def main(a):
    if a.delay:
        await asyncio.sleep(a.delay)
    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/hello", hello)
    app.router.add_post("/digest", digest)
    app.router.add_post("/stream", stream)
    app.router.add_get("/big", big)
    app.router.add_get("/ws", ws)
    app.router.add_get("/call", call)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", a.port).start()
    if a.marker:
        Path(a.marker).write_text("bound")
    stop = asyncio.Event()
    def term():
        if a.marker:
            Path(a.marker).write_text("sigterm")
        stop.set()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, term)
    try:
        await asyncio.wait_for(stop.wait(), a.exit_after)
    except asyncio.TimeoutError:
        await runner.cleanup()
        sys.exit(a.code)
    await runner.cleanup()

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--exit-after", type=float, default=None)
p.add_argument("--code", type=int, default=0)
p.add_argument("--delay", type=float, default=0.0)
p.add_argument("--marker", default="")
asyncio.run(main(p.parse_args()))
'''

BANNER = r'''
"""A server-speaks-first protocol: a banner, then each line back in upper case."""
import asyncio, sys

async def serve(reader, writer):
    writer.write(b"220 banner ready\r\n")
    await writer.drain()
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
'''

HANDLERS = """
from eblocks import Message

async def echo(msg, ctx):
    return Message.of({"body": msg.text(), "path": msg.header("x-eblocks-path"),
                       "method": msg.header("x-eblocks-method")})

async def caller(msg, ctx):
    return await ctx.call("web", Message(b"", {"x-eblocks-path": "/hello?from=caller",
                                               "x-eblocks-method": "GET"}))

intruder = caller  # the same call, from a block an authorization rule denies

async def reader(msg, ctx):  # nginx, a program in C, behind its sidecar
    path = msg.text() or "/site/hello.txt"
    reply = await ctx.call("nginx", Message(b"", {"x-eblocks-path": path,
                                                 "x-eblocks-method": "GET"}))
    return reply.body
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status, await resp.read()

    try:
        return asyncio.run(asyncio.wait_for(go(), timeout))
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0, b""


def _ready(admin: int) -> bool:
    return _get(f"http://127.0.0.1:{admin}/readyz", 1.0)[0] == 200


def _metric_lines(admin: int) -> list[str]:
    """``eblocks_requests_total`` of a proxy without a mesh (no identity: plaintext admin)."""
    status, body = _get(f"http://127.0.0.1:{admin}/metrics")
    assert status == 200
    return _request_lines(body)


def _mesh_metric_lines(sandbox: Sandbox, row: dict[str, int]) -> list[str]:
    """The same of a proxy in mesh ``side`` (mTLS: https with the CLI's certificate)."""
    return _request_lines(sandbox.admin_ok("side", row, "/metrics"))


def _request_lines(body: bytes) -> list[str]:
    return [
        line for line in body.decode().splitlines() if line.startswith("eblocks_requests_total")
    ]


def _count(lines: list[str], *labels: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if all(lb in line for lb in labels))


class Proxy:
    """One `eblocks proxy` started by a test, with its app; ports chosen free."""

    def __init__(self, sandbox: Sandbox, *app_args: str, extra: tuple[str, ...] = ()) -> None:
        self.app_port, self.port, self.admin = _free_port(), _free_port(), _free_port()
        script = sandbox.write("app.py", APP)
        self.proc = sandbox.start(
            "proxy",
            "--block",
            "web",
            "--app-port",
            str(self.app_port),
            "--port",
            str(self.port),
            "--admin-port",
            str(self.admin),
            *extra,
            "--",
            sys.executable,
            str(script),
            "--port",
            str(self.app_port),
            *app_args,
            state_dir=False,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, sandbox: Sandbox) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, sandbox.output_of(self.proc)
            return _ready(self.admin)

        wait_for(ready, timeout=30, what="the proxy's /readyz")


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    """One sandbox for the tests that share a proxy or a mesh (each costs seconds to start)."""
    sandbox = Sandbox(Path(tempfile.mkdtemp(prefix="eblocks-it-sidecar-")))
    try:
        yield sandbox
    finally:
        leftovers = sandbox.close()
    if leftovers:
        pytest.fail("processes left behind:\n" + "\n".join(leftovers))


@pytest.fixture(scope="module")
def proxy(box: Sandbox) -> Proxy:
    running = Proxy(box)
    running.wait_ready(box)
    return running


# -- a proxy alone (no spec) -----------------------------------------------------------


def test_http_through_the_proxy_streams_large_bodies_and_is_counted(proxy: Proxy) -> None:
    status, body = _get(f"{proxy.url}/hello?x=1")
    assert status == 200
    hello = {"path": "/hello?x=1", "method": "GET", "peer": None, "traceparent": None}
    assert orjson.loads(body) == hello

    payload = os.urandom(20 * 1024 * 1024)

    async def exchange() -> tuple[dict[str, object], bytes, bytes]:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{proxy.url}/digest", data=io.BytesIO(payload)) as resp:
                up = await resp.json()
            async with session.get(f"{proxy.url}/big", params={"n": str(20_000_000)}) as resp:
                assert resp.headers.get("transfer-encoding") == "chunked"
                h = hashlib.sha256()
                async for chunk in resp.content.iter_any():
                    h.update(chunk)
            expected = hashlib.sha256((bytes(range(256)) * 256) * 305)  # 19,988,480 bytes
            expected.update((bytes(range(256)) * 256)[: 20_000_000 - 19_988_480])
            return up, h.digest(), expected.digest()

    up, got, expected = asyncio.run(asyncio.wait_for(exchange(), 60))
    assert up == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    assert got == expected
    lines = _metric_lines(proxy.admin)
    assert _count(lines, 'direction="inbound"', 'dst_block="web"', 'status_code="200"') >= 3


def test_a_chunked_body_streams_through_both_ways(proxy: Proxy) -> None:
    """The app echoes each chunk as it comes: the client sends the next only after the echo.

    A proxy that buffered the request (or the response) whole would deadlock here.
    """
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(
            b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )
        seen = b""
        while b"first" not in seen:
            data = sock.recv(4096)
            assert data, "connection closed before the first chunk came back"
            seen += data
        assert b" 200 " in seen.split(b"\r\n", 1)[0]
        sock.sendall(b"6\r\nsecond\r\n0\r\n\r\n")
        while b"second" not in seen or not seen.endswith(b"0\r\n\r\n"):
            data = sock.recv(4096)
            assert data, "connection closed before the second chunk came back"
            seen += data


def test_websocket_echo_through_the_proxy(proxy: Proxy) -> None:
    async def talk() -> tuple[str | None, str, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{proxy.url}/ws", protocols=("echo",)) as ws,
        ):
            await ws.send_str("hi")
            text = await ws.receive_str()
            await ws.send_bytes(b"abc")
            data = await ws.receive_bytes()
            return ws.protocol, text, data

    protocol, text, data = asyncio.run(asyncio.wait_for(talk(), 15))
    assert (protocol, text, data) == ("echo", "echo:hi", b"cba")


def test_the_proxy_exits_with_its_app_and_fails_on_one_that_never_listens(
    sandbox: Sandbox,
) -> None:
    """Both proxies start at once (each costs seconds to start on a busy machine)."""
    exiting = Proxy(sandbox, "--exit-after", "1.5", "--code", "7")
    port = _free_port()
    never = sandbox.start(
        "proxy", "--block", "web", "--app-port", str(port), "--ready-timeout", "1",
        "--", sys.executable, "-c", "import time; time.sleep(30)",
        state_dir=False,
    )  # fmt: skip
    exiting.wait_ready(sandbox)
    assert exiting.proc.wait(timeout=30) == 7, sandbox.output_of(exiting.proc)
    assert never.wait(timeout=30) == 78
    _, err = sandbox.output_of(never)
    assert f"did not accept connections on 127.0.0.1:{port} within 1s" in err


def test_ready_only_once_the_app_listens_and_sigterm_reaches_the_app(sandbox: Sandbox) -> None:
    marker = sandbox.work / "marker"
    running = Proxy(sandbox, "--delay", "1", "--marker", str(marker))

    def ready() -> bool:
        assert running.proc.poll() is None, sandbox.output_of(running.proc)
        if _ready(running.admin):
            return True
        assert not marker.exists() or marker.read_text() == "bound"
        return False

    wait_for(ready, timeout=30, what="the proxy's /readyz")
    assert marker.read_text() == "bound"  # /readyz answered 200 only after the app bound
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=30) == 0, sandbox.output_of(running.proc)
    assert marker.read_text() == "sigterm"  # the proxy drained, then stopped the app


# -- external blocks of a mesh run by `eblocks up` (mTLS strict) ----------------------


@pytest.fixture(scope="module")
def mesh(box: Sandbox) -> dict[str, int]:
    """A mesh (mTLS strict) with two external blocks, for the rest of the module."""
    sandbox = box
    ports = {"web": _free_port(), "echo-up": _free_port(), "db": _free_port()}
    ports.update({"db-up": _free_port(), "pg": _free_port(), "pg-up": _free_port()})
    ports.update({"vault": _free_port(), "vault-up": _free_port()})
    postgres = ", ".join(
        orjson.dumps(a).decode() for a in _postgres_command(sandbox.root / "pg", ports["pg"])
    )
    sandbox.write("app.py", APP)
    sandbox.write("banner.py", BANNER)
    sandbox.write("handlers.py", HANDLERS)
    ports["nginx"] = _free_port()
    nginx_root = sandbox.root / "nginx"
    (nginx_root / "site").mkdir(parents=True)
    (nginx_root / "site" / "hello.txt").write_text("served by nginx\n")
    nginx_conf_path = sandbox.write(
        "nginx.conf",
        nginx_conf(
            nginx_root,
            f"        listen 127.0.0.1:{ports['nginx']};\n"
            f"        location /site/ {{ alias {nginx_root}/site/; }}\n",
            connections=64,
        ),
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx not installed: run scripts/system-deps.sh")
    python = sys.executable
    spec = sandbox.write(
        "mesh.yaml",
        f"""apiVersion: eblocks/v1
mesh: side
defaults: {{access_log: true}}
telemetry: {{tracing: {{sampling: 1.0, exporter: file}}}}
blocks:
  web:
    external:
      command: [{python}, app.py, --port, "{ports["web"]}"]
      port: {ports["web"]}
      upstreams:
        echo: {ports["echo-up"]}
        db: {ports["db-up"]}
        pg: {ports["pg-up"]}
        vault: {ports["vault-up"]}
  pg:
    external: {{command: [{postgres}], port: {ports["pg"]}, protocol: tcp, ready_timeout: 60s}}
  db:
    external:
      command: [{python}, banner.py, "{ports["db"]}"]
      port: {ports["db"]}
      protocol: tcp
  echo: {{handler: "handlers:echo"}}
  caller: {{handler: "handlers:caller"}}
  intruder: {{handler: "handlers:intruder"}}
  vault:
    external:
      command: [{python}, banner.py, "{ports["vault"]}"]
      port: {ports["vault"]}
      protocol: tcp
  nginx:
    external: {{command: [{nginx}, -c, {nginx_conf_path}], port: {ports["nginx"]}}}
  reader: {{handler: "handlers:reader"}}
policies:
  routes:
    - {{name: nginx-retries, to: nginx, timeout: 5s, retries: {{attempts: 3}}}}
  blocks:
    nginx:
      rate_limits: [{{rate: 1000, per: source}}]
      bulkhead: {{max_concurrent: 32}}
security:
  authorization:
    rules:
      - {{name: no-intruder, action: deny, from: [intruder], to: [web]}}
      - {{name: vault-closed-to-web, action: deny, from: [web], to: [vault], methods: [CONNECT]}}
""",
    )
    run = sandbox.up(spec)
    assert run.returncode == 0, str(run)
    return ports


PG_PASSWORD = "sidecar-test-pw"


def _postgres_command(root: Path, port: int) -> list[str]:
    """``initdb`` a throwaway cluster under ``root``; the command that serves it on ``port``.

    As root the server runs as ``postgres`` through ``setpriv``, which execs (no
    process in between), so the proxy's signals reach the server itself.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = Path(found[-1]) if found else Path(shutil.which("initdb") or "initdb")
    if not initdb.exists():
        pytest.fail("PostgreSQL server not installed: run scripts/system-deps.sh")
    root.mkdir()
    (root / "pw").write_text(PG_PASSWORD + "\n")
    as_root = os.geteuid() == 0
    prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if as_root else []
    if as_root:
        os.chmod(root.parent, 0o755)  # mkdtemp's 0700 would hide the data from postgres
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "pw", "postgres", "postgres")
    data = root / "data"
    done = subprocess.run(
        [*prefix, str(initdb), "-D", str(data), "-U", "sidecar", f"--pwfile={root / 'pw'}",
         "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--no-sync", "--locale=C"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = ["listen_addresses=127.0.0.1", f"unix_socket_directories={root}", "fsync=off"]
    options = [arg for setting in settings for arg in ("-c", setting)]
    return [*prefix, str(initdb.parent / "postgres"), "-D", str(data), "-p", str(port), *options]


def _row(sandbox: Sandbox, block: str) -> dict[str, int]:
    """The state row of ``block``'s only instance in mesh ``side``."""
    return next(r for r in sandbox.instances("side") if r["block"] == block)


def test_an_external_block_answers_the_mesh_over_mtls(box: Sandbox, mesh: dict[str, int]) -> None:
    sandbox = box
    run = sandbox.cmd("call", "caller")
    assert run.returncode == 0, str(run)
    answer = orjson.loads(run.stdout)
    _, trace_id, parent_id, _ = answer.pop("traceparent").split("-")
    assert answer == {
        "path": "/hello?from=caller",
        "method": "GET",
        "peer": "spiffe://eblocks.local/mesh/side/block/caller",
    }

    def proxy_span() -> list[Span]:
        logs = sandbox.mesh_dir("side") / "logs"
        return [s for s in read_spans(logs) if (s.trace_id, s.span_id) == (trace_id, parent_id)]

    # the program's traceparent names the proxy's server span: its spans would be children
    (span,) = wait_for(proxy_span, timeout=15, what="the proxy's span in the span files")
    assert span.name.startswith("web ")
    web = _row(sandbox, "web")
    lines = _mesh_metric_lines(sandbox, web)
    assert _count(lines, 'src_block="caller"', 'dst_block="web"', 'status_code="200"') == 1
    log = sandbox.mesh_dir("side") / "logs" / "web-0.access.jsonl"

    def logged() -> bool:  # the writer appends in the background, every 0.2 s
        text = log.read_text() if log.exists() else ""
        whole = text[: text.rfind("\n") + 1].splitlines()  # a line being written is left out
        return any(orjson.loads(line)["source"] == "caller" for line in whole)

    wait_for(logged, timeout=10, what="the caller's request in web's access log")
    # the proxy's mesh port is mTLS only: a plaintext request gets no answer from the app
    assert _get(f"http://127.0.0.1:{web['port']}/hello", 3.0)[0] != 200


def test_the_app_calls_a_block_through_its_upstream_port(
    box: Sandbox, mesh: dict[str, int]
) -> None:
    sandbox = box
    run = sandbox.cmd(
        "call", "web", "-H", "x-eblocks-path: /call?to=echo&path=/a/b%3Fq%3D1&method=DELETE",
        "-H", "x-eblocks-method: GET",
    )  # fmt: skip
    assert run.returncode == 0, str(run)
    assert orjson.loads(run.stdout) == {"body": "", "path": "/a/b?q=1", "method": "DELETE"}
    lines = _mesh_metric_lines(sandbox, _row(sandbox, "echo"))
    assert _count(lines, 'direction="inbound"', 'src_block="web"', 'dst_block="echo"') == 1


def test_tcp_mode_tunnels_a_server_speaks_first_protocol(
    box: Sandbox, mesh: dict[str, int]
) -> None:
    sandbox = box
    with socket.create_connection(("127.0.0.1", mesh["db-up"]), timeout=10) as sock:
        banner = sock.recv(100)
        sock.sendall(b"select 1\n")
        answer = sock.recv(100)
    assert (banner, answer) == (b"220 banner ready\r\n", b"SELECT 1\n")
    db = _row(sandbox, "db")

    def counted() -> bool:
        lines = _mesh_metric_lines(sandbox, db)
        return _count(lines, 'src_block="web"', 'route="tcp"', 'status_code="200"') == 1

    wait_for(counted, timeout=10, what="the tunnelled connection in db's metrics")
    # without the mesh's certificate nobody reaches the app behind db's proxy
    with socket.create_connection(("127.0.0.1", db["port"]), timeout=10) as sock:
        sock.settimeout(1.0)
        sock.sendall(b"\x16\x03\x01 not a real client hello\n")
        try:
            data = sock.recv(100)
        except TimeoutError:
            data = b""
    assert b"banner" not in data


def test_authorization_rules_hold_for_http_and_tcp(box: Sandbox, mesh: dict[str, int]) -> None:
    run = box.cmd("call", "intruder")
    assert run.returncode != 0
    assert "forbidden" in run.output
    web = _row(box, "web")
    lines = _mesh_metric_lines(box, web)
    assert _count(lines, 'src_block="intruder"', 'status_code="403"') == 1
    assert _count(lines, 'src_block="intruder"', 'status_code="200"') == 0
    # a denied tunnel is closed before the program speaks
    with socket.create_connection(("127.0.0.1", mesh["vault-up"]), timeout=10) as sock:
        sock.settimeout(10)
        assert sock.recv(100) == b""
    vault = _row(box, "vault")

    def refused() -> bool:
        lines = _mesh_metric_lines(box, vault)
        return _count(lines, 'src_block="web"', 'route="tcp"', 'status_code="403"') == 1

    wait_for(refused, timeout=10, what="the refused tunnel in vault's metrics")
    log = (box.mesh_dir("side") / "logs" / "vault-0.log").read_text()
    assert "rule=vault-closed-to-web" in log


def test_postgresql_answers_through_the_tcp_tunnel(box: Sandbox, mesh: dict[str, int]) -> None:
    """A real server-speaks-first protocol: SCRAM authentication, a query, over two proxies."""
    url = f"postgresql://sidecar:{PG_PASSWORD}@127.0.0.1:{mesh['pg-up']}/postgres"
    with psycopg.connect(url, connect_timeout=15, sslmode="disable") as conn:
        (row,) = conn.execute("select 6 * 7, current_setting('port')::int").fetchall()
    assert row == (42, mesh["pg"])  # the port the server itself listens on


def test_nginx_behind_its_sidecar_answers_a_python_block_over_mtls(
    box: Sandbox, mesh: dict[str, int]
) -> None:
    run = box.cmd("call", "reader")
    assert run.returncode == 0, str(run)
    assert run.stdout == "served by nginx\n"
    missing = box.cmd("call", "reader", "--data", "/site/absent.txt")
    assert missing.returncode != 0
    assert "404" in missing.output
    lines = _mesh_metric_lines(box, _row(box, "nginx"))
    assert _count(lines, 'src_block="reader"', 'status_code="200"') >= 1


def test_eblocks_apply_reaches_the_proxies_as_every_instance(
    box: Sandbox, mesh: dict[str, int]
) -> None:
    """A proxy takes signed bundles as a Python block does: `apply` waits for it too."""
    spec = box.work / "mesh.yaml"
    changed = box.write(
        "mesh-v1.yaml",
        spec.read_text(encoding="utf-8").replace("max_concurrent: 32", "max_concurrent: 33"),
    )
    run = box.cmd("apply", str(changed), "--timeout", "30")
    assert run.returncode == 0, str(run)
    rows = box.instances("side")
    assert re.search(rf"\b{len(rows)}/{len(rows)} instances at v1\b", run.stdout), str(run)
    proxies = [r for r in rows if r["block"] in {"web", "db", "pg", "vault", "nginx"}]
    assert len(proxies) == 5
    for row in proxies:
        answer = orjson.loads(box.admin_ok("side", row, "/v1/policies"))
        assert answer["version"] == 1, row["instance"]
        assert answer["policies"]["blocks"]["nginx"]["bulkhead"]["max_concurrent"] == 33
    # the swap drops nothing: the proxy still serves the caller under the new version
    again = box.cmd("call", "reader")
    assert again.returncode == 0, str(again)


def test_sigterm_to_the_mesh_stops_the_apps_too(box: Sandbox, mesh: dict[str, int]) -> None:
    sandbox = box
    apps = []
    for name in ("web", "db", "pg", "vault"):
        run_file = sandbox.mesh_dir("side") / "run" / f"{name}-0.json"
        apps.append(int(orjson.loads(run_file.read_bytes())["app_pid"]))
    run = sandbox.cmd("down", "--mesh", "side")
    assert run.returncode == 0, str(run)

    def gone() -> bool:
        return not any(_alive(pid) for pid in apps)

    wait_for(gone, timeout=20, what="the external programs to stop")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"
