"""The two pairs of proxies of `eblocks bench overhead --sidecar`, started and always stopped.

Each pair puts one proxy next to the caller and one next to the server, the
data-plane shape of sidecar meshes, in front of the benchmark's bare echo
server; the load generator's bare aiohttp client sends to the first proxy::

    sidecar-pair: client -> eblocks proxy `caller` (upstream port: the client stack)
                  -> mTLS -> eblocks proxy `echo` -> the app
    nginx-pair:   client -> nginx A -> nginx B -> the app
                  (proxy_pass to a keep-alive upstream on both hops, plaintext)

The Eblocks pair is a mesh of two ``external`` blocks in the spec's defaults
(mTLS strict, authorization allow); the driver plays the supervisor: it
creates the mesh CA in a throw-away state dir and publishes the server proxy
in ``endpoints.json``, where the caller proxy's client stack finds it.

The nginx pair runs two unprivileged nginx processes (``daemon off;
master_process off;``, one worker each, every path in a temp dir). nginx is
Debian's ``nginx-light`` (`scripts/system-deps.sh`); without it the benchmark
fails before anything starts, naming the package.

Every process is stopped on the way out (SIGTERM, then SIGKILL; bounded waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from eblocks.security.admin import AdminAccess

__all__ = [
    "NGINX_PACKAGE",
    "NGINX_PAIR",
    "NGINX_PATH",
    "PAIRS",
    "SIDECAR_PAIR",
    "BenchError",
    "find_nginx",
    "free_port",
    "nginx_conf",
    "nginx_pair",
    "proxy_pair",
    "stop_process",
]

SIDECAR_PAIR = "sidecar-pair"
NGINX_PAIR = "nginx-pair"
PAIRS = (SIDECAR_PAIR, NGINX_PAIR)
NGINX_PACKAGE = "nginx-light"
NGINX_PATH = "/usr/sbin/nginx"  # where Debian installs it (often not on a user's PATH)
START_TIMEOUT = 20.0  # a process that is not ready by then is broken
STOP_TIMEOUT = 5.0

PAIR_SPEC = """\
apiVersion: eblocks/v1
mesh: bench-pair
blocks:
  echo:
    external: {{command: [bench-echo], port: {app_port}}}
  caller:
    external: {{command: [bench-load], port: {app_port}, upstreams: {{echo: {upstream}}}}}
"""
"""Two external blocks; ``caller`` reaches ``echo`` through its upstream port (mTLS strict)."""


def nginx_conf(root: Path, server: str, *, connections: int = 1024, http: str = "") -> str:
    """An nginx.conf that runs unprivileged from ``root`` (no daemon, no master process,
    every file and temp path under it), with ``http`` settings and one ``server`` block."""
    return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{http}    server {{
{server}    }}
}}
"""


def _proxy_conf(root: Path, listen: str, upstream: str) -> str:
    """One sidecar-style nginx: every request to a keep-alive upstream, HTTP/1.1 on both sides."""
    http = f"""\
    client_max_body_size 0;
    client_body_buffer_size 1m;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream next {{
        server {upstream};
        keepalive 64;
    }}
"""
    server = f"""\
        listen {listen};
        location / {{
            proxy_pass http://next;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffers 16 64k;
        }}
"""
    return nginx_conf(root, server, http=http)


class BenchError(RuntimeError):
    """A benchmark could not run (a server did not start) or a reply was wrong."""


def find_nginx() -> str:
    """The nginx binary, or a `BenchError` naming the Debian package to install."""
    found = shutil.which("nginx") or NGINX_PATH
    if not Path(found).is_file():
        raise BenchError(
            f"nginx not found (the nginx-pair side needs it): install the Debian package "
            f"{NGINX_PACKAGE} (`apt-get install {NGINX_PACKAGE}`, or scripts/system-deps.sh)"
        )
    return found


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@asynccontextmanager
async def proxy_pair(host: str, app_port: int, root: Path) -> AsyncIterator[tuple[int, list[int]]]:
    """Two `eblocks proxy` in front of ``app_port``: the caller's upstream port and both pids."""
    upstream, server_port = free_port(host), free_port(host)
    spec_file, state, access = _prepare_mesh(host, app_port, upstream, server_port, root)
    async with AsyncExitStack() as stack:
        pids = []
        for block, port, extra in (
            ("echo", server_port, ()),
            ("caller", free_port(host), ("--upstream", f"echo={upstream}")),
        ):
            admin = free_port(host)
            proc = await _spawn(
                sys.executable, "-m", "eblocks", "proxy", "--spec", str(spec_file),
                "--mesh-state", str(state), "--block", block, "--instance", f"{block}-0",
                "--host", host, "--port", str(port), "--admin-port", str(admin),
                "--app-host", host, "--app-port", str(app_port), *extra,
            )  # fmt: skip
            stack.push_async_callback(stop_process, proc)
            url = access.url(block, host, admin, "/readyz")
            await _wait_http(proc, access, url, f"eblocks proxy {block}")
            pids.append(proc.pid)
        await _wait_tcp(host, upstream, f"the caller proxy's upstream port {upstream}")
        yield upstream, pids


@asynccontextmanager
async def nginx_pair(
    nginx: str, host: str, app_port: int, root: Path
) -> AsyncIterator[tuple[int, list[int]]]:
    """nginx A -> nginx B -> ``app_port``: A's port and both pids."""
    port_a, port_b = free_port(host), free_port(host)
    async with AsyncExitStack() as stack:
        pids = []
        for name, listen, upstream in (("b", port_b, app_port), ("a", port_a, port_b)):
            folder = root / name
            conf = _nginx_conf(folder, _addr(host, listen), _addr(host, upstream))
            log = folder / "error.log"  # from the start, also for an unprivileged user
            proc = await _spawn(nginx, "-c", str(conf), "-p", str(folder), "-e", str(log))
            stack.push_async_callback(stop_process, proc)
            await _wait_tcp(host, listen, f"nginx {name.upper()}", proc, log)
            pids.append(proc.pid)
        yield port_a, pids


def _prepare_mesh(
    host: str, app_port: int, upstream: int, server_port: int, root: Path
) -> tuple[Path, Path, AdminAccess]:
    """The pair's spec file and state dir (the mesh CA, both SVIDs, ``echo`` published)
    and the bench's own access to the proxies' admin ports (TLS: ``client/bench``)."""
    from eblocks._types import Endpoint
    from eblocks.discovery import write_endpoints
    from eblocks.runtime.state import StateDir
    from eblocks.security import LocalIssuer
    from eblocks.security.admin import AdminAccess
    from eblocks.spec import parse_spec

    text = PAIR_SPEC.format(app_port=app_port, upstream=upstream)
    root.mkdir(parents=True)
    spec_file = root / "mesh.yaml"
    spec_file.write_text(text, encoding="utf-8")
    spec = parse_spec(text, str(spec_file))
    state = StateDir.for_mesh(spec.mesh, root / "state")
    state.create()
    issuer = LocalIssuer(spec, state.path)
    issuer.issue_block("echo-0", "echo")
    issuer.issue_block("caller-0", "caller")
    issuer.issue_client("bench")
    write_endpoints(state.path, [Endpoint("echo", "echo-0", host, server_port, {})])
    return spec_file, state.path, AdminAccess.of(spec, state.path, "bench")


def _nginx_conf(folder: Path, listen: str, upstream: str) -> Path:
    folder.mkdir(parents=True)
    conf = folder / "nginx.conf"
    conf.write_text(_proxy_conf(folder, listen, upstream), "utf-8")
    return conf


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-500:] if log.exists() else ""


async def _spawn(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _wait_http(
    proc: asyncio.subprocess.Process, access: AdminAccess, url: str, what: str
) -> None:
    """Until ``url`` answers 200 (bounded by `START_TIMEOUT`)."""
    deadline = time.monotonic() + START_TIMEOUT
    async with access.session(aiohttp.ClientTimeout(total=1.0)) as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise BenchError(f"{what} exited with {proc.returncode}: {await _output(proc)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise BenchError(f"{what} was not ready within {START_TIMEOUT:.0f}s")


async def _wait_tcp(
    host: str,
    port: int,
    what: str,
    proc: asyncio.subprocess.Process | None = None,
    log: Path | None = None,
) -> None:
    """Until ``host:port`` accepts a connection (bounded by `START_TIMEOUT`)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.returncode is not None:
            detail = _tail(log) if log is not None else ""
            raise BenchError(f"{what} exited with {proc.returncode}: {detail}")
        with contextlib.suppress(OSError, TimeoutError):
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"{what} did not accept connections within {START_TIMEOUT:.0f}s")


async def _output(proc: asyncio.subprocess.Process) -> str:
    if proc.stdout is None:
        return ""
    with contextlib.suppress(TimeoutError):
        data = await asyncio.wait_for(proc.stdout.read(), STOP_TIMEOUT)
        return data.decode(errors="replace")[-500:]
    return ""


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after `STOP_TIMEOUT`; drain its output pipe (bounded)."""
    if proc.returncode is None:
        try:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except ProcessLookupError:
            pass
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    if proc.stdout is not None:  # drain the pipe so its transport closes cleanly
        await asyncio.wait_for(proc.stdout.read(), STOP_TIMEOUT)
