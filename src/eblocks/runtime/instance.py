"""One instance process: ``python -m eblocks.runtime.instance`` (started by the supervisor).

Exit codes: 0 after a clean drain; 78 (EX_CONFIG) when the instance cannot
start because of its configuration — the supervisor does not restart those.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from eblocks._types import Resolver
from eblocks.block import Block, MeshClient
from eblocks.block.handler import check_handler, load_ref
from eblocks.errors import (
    AppStartError,
    DiscoveryError,
    HandlerImportError,
    MissingExtraError,
    PortInUseError,
    ScalerError,
    SecurityError,
    SpecError,
)
from eblocks.policies.keys import load_public_key, read_run
from eblocks.policies.sync import PolicySync
from eblocks.runtime.membership import Membership
from eblocks.runtime.state import EXIT_CONFIG, StateDir, write_json
from eblocks.security.admin import AdminAccess
from eblocks.spec import MeshSpec, load_spec
from eblocks.telemetry import AccessLog, Telemetry
from eblocks.telemetry.tracing import tracing_from_spec
from eblocks.workload.scalers import make_scaler

if TYPE_CHECKING:
    from eblocks.security import Auth

__all__ = [
    "CONFIG_ERRORS",
    "EXIT_CONFIG",
    "main",
    "mesh_parts",
    "orphan_watch",
    "policy_sync",
    "setup_logging",
]

CONFIG_ERRORS = (
    AppStartError,
    DiscoveryError,
    HandlerImportError,
    MissingExtraError,
    PortInUseError,
    ScalerError,
    SecurityError,
    SpecError,
)
"""What stops an instance for good: exit `EXIT_CONFIG`, the supervisor does not restart it."""

log = logging.getLogger("eblocks.instance")


class _RequestIdDefault(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return True


def setup_logging(instance: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdDefault())
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)s {instance} [%(request_id)s] %(name)s: %(message)s"
        )
    )
    logging.basicConfig(level=os.environ.get("EBLOCKS_LOG_LEVEL", "INFO"), handlers=[handler])


async def _load_app(block: str, ref: str) -> web.Application:
    factory = load_ref(block, ref)
    app = factory()
    if inspect.isawaitable(app):
        app = await app
    if not isinstance(app, web.Application):
        raise HandlerImportError(
            block, ref, f"returned {type(app).__name__}, not an aiohttp Application"
        )
    return app


def mesh_parts(
    spec: MeshSpec, block: str, instance: str, state: StateDir, spec_path: str, resolver: Resolver
) -> tuple[Telemetry, Auth | None, MeshClient]:
    """What every instance of ``block`` carries: telemetry, identity (Auth) and mesh client.

    Shared by a handler or app instance and the sidecar proxy (`eblocks.sidecar.run`).
    """
    from eblocks.security import Auth  # cryptography loads only here, when the mesh uses it

    access_log = None
    if spec.settings(block).access_log:
        access_log = AccessLog(state.path / "logs" / f"{instance}.access.jsonl")
    tracing = tracing_from_spec(spec.telemetry.tracing, block, instance, state.path / "logs")
    requests = spec.telemetry.metrics  # false: the spec check refused an access log and tracing
    telemetry = Telemetry(
        block, instance, access_log=access_log, tracing=tracing, requests=requests
    )
    auth = Auth.for_holder(
        spec,
        state.path,
        instance,
        block=block,
        spec_dir=Path(os.environ.get("EBLOCKS_SPEC_DIR") or Path(spec_path).parent),
    )
    client = MeshClient(spec, resolver, source=block, telemetry=telemetry, auth=auth)
    return telemetry, auth, client


async def _build(spec: MeshSpec, args: argparse.Namespace, membership: Membership) -> Block:
    block_spec = spec.blocks[args.block]
    state = StateDir(Path(args.state_dir))
    telemetry, auth, client = mesh_parts(
        spec, args.block, args.instance, state, args.spec, membership.resolver
    )
    if block_spec.gateway is not None:
        spec_dir = Path(os.environ.get("EBLOCKS_SPEC_DIR") or Path(args.spec).parent)
        block = _gateway(spec, args, client, auth, spec_dir, telemetry)
    elif block_spec.handler is not None:
        handler = load_ref(args.block, block_spec.handler)
        check_handler(args.block, block_spec.handler, handler)
        block = Block.in_mesh(
            args.block, handler, app=None, client=client, instance=args.instance, auth=auth
        )
    else:
        app = await _load_app(args.block, block_spec.app or "")  # the spec sets one of the two
        block = Block.in_mesh(
            args.block, None, app=app, client=client, instance=args.instance, auth=auth
        )
    block.add_admin_get("/v1/members", membership.members)
    membership.publish_gauges(telemetry.hooks)
    return block


def _gateway(
    spec: MeshSpec,
    args: argparse.Namespace,
    client: MeshClient,
    auth: Auth | None,
    spec_dir: Path,
    telemetry: Telemetry,
) -> Block:
    """An ingress gateway (an app Eblocks provides) or an egress one (a handler)."""
    from eblocks.proxy import Egress, ingress_app, operator_ssl

    gateway = spec.blocks[args.block].gateway
    max_body = spec.settings(args.block).max_body
    if gateway is None:
        raise ValueError(f"block {args.block!r} is not a gateway")
    if gateway.kind == "egress":
        egress = Egress(
            args.block,
            gateway,
            spec_dir=spec_dir,
            max_body=max_body,
            telemetry=telemetry if telemetry.requests else None,  # it counts each request
        )
        block = Block.in_mesh(
            args.block, egress, app=None, client=client, instance=args.instance, auth=auth
        )
        block.on_stop(egress.aclose)
        return block
    server_ssl = None
    if gateway.tls is not None:
        bundle = auth.files.bundle_file if auth is not None else None
        server_ssl = operator_ssl(gateway.tls, spec_dir, bundle)
    return Block.in_mesh(
        args.block,
        None,
        app=ingress_app(
            args.block, gateway, max_body=max_body, timeout=spec.settings(args.block).timeout
        ),
        client=client,
        instance=args.instance,
        auth=auth,
        server_ssl=server_ssl,
    )


def policy_sync(
    spec: MeshSpec, block: Block, state: StateDir, trust: Path | None = None
) -> PolicySync:
    """`eblocks apply`'s receiving end: GET/POST /v1/policies, resumed from the state dir.

    Every instance has one: a handler or app block here, a sidecar proxy in
    `eblocks.sidecar.run` (its block enforces the same policies).

    ``trust``: where ``signing.pub`` and ``run`` are (default ``<state>/policy``).
    """
    sync = PolicySync(
        spec,
        block.policies,
        state.path,
        load_public_key(state.path, trust),
        watch_file=spec.discovery.mode != "gossip",  # gossip mode: records carry the version
        run=read_run(state.path, trust),
        admin=AdminAccess(spec, block.auth.files if block.auth is not None else None),
    )
    sync.resume()  # before serving: the first request already sees the applied version
    block.add_admin_get("/v1/policies", sync.get)
    block.add_admin_post("/v1/policies", sync.post)
    sync.publish_gauges(block.telemetry.hooks)
    return sync


async def _run(args: argparse.Namespace) -> int:
    state = StateDir(Path(args.state_dir))
    state.create()  # in a pod the state dir is a fresh emptyDir: no supervisor made run/
    block: Block | None = None
    try:
        spec = load_spec(args.spec)
        membership = Membership(spec, state, args.block, args.instance)
        block = await _build(spec, args, membership)
        trust = Path(args.policy_dir) if args.policy_dir else None
        sync = policy_sync(spec, block, state, trust)
        await block.start(args.host, args.port, args.admin_port, args.admin_host)
        await membership.start(block, args.host)
        if any(mw.workers is not None for _, mw in block.pools.managed()):
            block.pools.autoscale(make_scaler(state, args.instance, spec.mesh))
    except CONFIG_ERRORS as exc:
        if block is not None and block.ready:
            await block.stop()
        write_json(state.error_file(args.instance), {"error": str(exc), "kind": type(exc).__name__})
        log.error("%s", exc)
        return EXIT_CONFIG
    write_json(
        state.run_file(args.instance),
        {
            "pid": os.getpid(),
            "host": args.host,
            "port": block.port,
            "admin_port": block.admin_port,
            "gossip_port": membership.gossip_port,
        },
    )
    # What start-up made (modules, the app, the spec) lives as long as the process: out of
    # the collector's full passes, which then walk only what requests leave behind (D64)
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = asyncio.create_task(orphan_watch(stop))
    rotation = asyncio.create_task(block.auth.watch()) if block.auth is not None else None
    peers = membership.policy_peers if membership.gossip_mode else None
    policies = asyncio.create_task(sync.run(peers), name="policies")
    await stop.wait()
    watchdog.cancel()
    policies.cancel()
    if rotation is not None:
        rotation.cancel()
    await membership.leave()  # gossip LEFT first: no new request is routed here
    log.info("draining (up to %.1fs, %d in flight)", block.settings.drain, block.inflight)
    await block.stop()
    await membership.aclose()
    log.info("stopped")
    return 0


async def orphan_watch(stop: asyncio.Event) -> None:
    """Stop when the supervisor is gone (e.g. killed with -9), so nothing is left behind."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us the parent died
        await asyncio.sleep(1.0)
    log.warning("supervisor (pid %d) is gone; stopping", parent)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eblocks-instance")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--block", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--admin-port", type=int, default=0)
    # Default --host; `*`: every address (a pod: its IP and loopback, for port-forward).
    parser.add_argument("--admin-host", default=None)
    # A rendered pod's read-only ConfigMap of the policy public key and run id.
    parser.add_argument("--policy-dir", default=None)
    args = parser.parse_args(argv)
    setup_logging(args.instance)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(args))
    return uvloop.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
