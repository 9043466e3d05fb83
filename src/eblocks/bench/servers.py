"""Echo servers for the overhead benchmark, each run in its own process.

``python -m eblocks.bench.servers bare|eblock`` binds a free port on loopback,
prints ``PORT <n> <loop>`` on stdout once it serves, and stops on SIGTERM/SIGINT or
when its parent process is gone. Both run on uvloop when it is installed.

- ``bare``: a plain aiohttp `web.Application` that returns the request body.
- ``eblock``: a real `eblocks.Block` whose handler is :func:`echo`.
- ``mtls``: the same Block with mTLS (strict) and default-deny authorization
  with rules (`SECURE_SPECS`), its SVID read from ``--state-dir`` (written there
  by the benchmark driver's `LocalIssuer`).
- ``secure``: as ``mtls``, plus a required request token on every call.
- ``policies``: the plain Block with every traffic and resilience policy
  configured but none triggering (`POLICIES_SPEC`).
- ``telemetry-off``: the plain Block with per-request telemetry off (what
  ``telemetry: {metrics: false}`` gives); ``telemetry``: with metrics and
  tracing sampled at 10 % (`eblocks.bench.telemetry.side_telemetry`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from eblocks.bench.telemetry import SIDES, side_telemetry
from eblocks.block import Block
from eblocks.message import Message
from eblocks.policies import LivePolicies
from eblocks.spec import parse_spec

if TYPE_CHECKING:
    from eblocks.security import Auth

__all__ = ["KINDS", "POLICIES_SPEC", "SECURE_SPEC", "SECURE_SPECS", "bare_app", "echo", "main"]

KINDS = ("bare", "eblock", "mtls", "secure", "policies", *SIDES)
SECURE_SPEC = """\
apiVersion: eblocks/v1
mesh: bench
blocks:
  echo:
    handler: eblocks.bench.servers:echo
security:
  mtls: strict
  tokens: {mode: required}
  authorization:
    default: deny
    rules:
      - {name: no-legacy, action: deny, from: ["legacy-*"]}
      - {name: bench-to-echo, action: allow, from: [client/bench], to: [echo], methods: [POST]}
"""
"""The secure side's spec: every check on (mTLS, a token per request, deny + allow rules)."""

SECURE_SPECS = {
    "mtls": SECURE_SPEC.replace("  tokens: {mode: required}\n", ""),
    "secure": SECURE_SPEC,
}
"""The spec of each secured side: ``mtls`` (mTLS + authorization), ``secure`` (+ tokens)."""


POLICIES_SPEC = """\
apiVersion: eblocks/v1
mesh: bench
blocks:
  echo:
    handler: eblocks.bench.servers:echo
policies:
  routes:
    - name: echo-all
      to: echo
      match: [{methods: [POST], path: {prefix: /}}]
      destinations: [{block: echo, weight: 100}]
      mirror: {to: echo, percent: 0}
      timeout: 30s
      per_try_timeout: 10s
      retries: {attempts: 3}
  blocks:
    echo:
      retry_budget: {ratio: 0.2, min_per_second: 10, window: 10s}
      outlier: {consecutive_failures: 5, base_ejection: 30s, max_ejected_percent: 50}
      limits: {max_pending: 100000, max_connections: 10000}
      rate_limits:
        - {rate: 1000000, burst: 1000000, per: source, overrides: [{source: [legacy-*], rate: 10}]}
      bulkhead: {max_concurrent: 100000}
      faults:
        - match: {headers: {x-chaos: {exact: "1"}}}
          delay: {percent: 0, delay: 1s}
          abort: {percent: 0, status: 503}
"""
"""Every policy layer configured, none triggering: one route that matches every call with
a single destination, a mirror of 0 %, retries under a budget, outlier detection, limits,
a rate limit and a bulkhead far above the load, a fault rule for a header nobody sends."""


async def echo(msg: Message) -> bytes:
    """The Eblock handler: the reply is the request body."""
    return msg.body


async def _bare_echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


def bare_app() -> web.Application:
    """The bare side: one catch-all route, like the Block's, and no middleware."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", _bare_echo)
    return app


async def _serve(kind: str, host: str, state: Path | None = None) -> None:
    if kind == "bare":
        runner = web.AppRunner(bare_app(), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0, backlog=1024)
        await site.start()
        port: int = runner.addresses[0][1]
        stop_server = runner.cleanup
    else:
        block = _block(kind, state)
        await block.start(host, 0)
        port = block.port
        stop_server = block.stop
    gc.freeze()  # as an instance does once started (runtime/instance.py), every side alike
    loop = asyncio.get_running_loop()
    loop_kind = "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
    print(f"PORT {port} {loop_kind}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = asyncio.create_task(_orphan_watch(stop))
    try:
        await stop.wait()
    finally:
        watchdog.cancel()
        await stop_server()


def _block(kind: str, state: Path | None) -> Block:
    """The echo Block of side ``kind`` (any side but ``bare``)."""
    if kind == "policies":
        policies = LivePolicies.of(parse_spec(POLICIES_SPEC, "<bench policies>").policies)
        return Block("echo", echo, policies=policies)
    if kind in SIDES:
        return Block("echo", echo, telemetry=side_telemetry(kind, "echo", "echo-0"))
    auth = _secure_auth(kind, state) if kind in SECURE_SPECS else None
    return Block("echo", echo, auth=auth)


def _secure_auth(kind: str, state: Path | None) -> Auth:
    from eblocks.security import Auth

    if state is None:
        raise SystemExit(f"the {kind} server needs --state-dir")
    spec = parse_spec(SECURE_SPECS[kind], f"<bench {kind}>")
    auth = Auth.for_holder(spec, state, "echo-0", block="echo")
    assert auth is not None  # the secured specs turn mTLS on
    return auth


async def _orphan_watch(stop: asyncio.Event) -> None:
    """Stop when the benchmark driver is gone, so no server outlives it."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us the parent died
        await asyncio.sleep(0.5)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eblocks-bench-server")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args.kind, args.host, args.state_dir))
    else:
        uvloop.run(_serve(args.kind, args.host, args.state_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
