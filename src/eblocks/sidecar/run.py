"""The proxy process: ``eblocks proxy`` (and what ``eblocks up`` runs for an external block).

One process, ordered as `eblocks.sidecar.process` draws it. With ``--spec``
the proxy is an instance of the mesh like any other: its identity (SVID),
its membership (supervisor file or gossip), its run file for the supervisor;
without one it fronts the app alone (plaintext, no upstreams).

Exit codes: the app's when the app exits first (a signal ``N``: ``128+N``);
0 after SIGTERM and a clean drain; 78 (`EXIT_CONFIG`) when the proxy cannot
start (spec, identity, port in use, an app that never opens its port).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eblocks.errors import SecurityError
from eblocks.runtime.instance import (
    CONFIG_ERRORS,
    mesh_parts,
    orphan_watch,
    policy_sync,
    setup_logging,
)
from eblocks.runtime.membership import Membership
from eblocks.runtime.state import EXIT_CONFIG, StateDir, write_json
from eblocks.sidecar.options import Upstream, check_upstreams, exit_code_of
from eblocks.sidecar.process import AppProcess, wait_for_port
from eblocks.sidecar.proxy import Sidecar
from eblocks.spec import MeshSpec, load_spec

if TYPE_CHECKING:
    from eblocks.policies.sync import PolicySync

__all__ = ["ProxyConfig", "main", "run_proxy"]

log = logging.getLogger("eblocks.sidecar")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Everything ``eblocks proxy`` was told (see `eblocks.cli.proxy_cmds`)."""

    block: str
    app_port: int
    app_host: str = "127.0.0.1"
    spec: Path | None = None
    state_root: Path | None = None
    state_dir: Path | None = None  # the mesh's state dir itself (over ``state_root``)
    instance: str | None = None
    host: str | None = None
    port: int | None = None
    admin_port: int = 0
    admin_host: str | None = None  # default: host; "*": every address (kubectl port-forward)
    upstreams: tuple[Upstream, ...] = ()
    tcp: bool = False
    ready_timeout: float | None = None
    command: tuple[str, ...] = ()
    orphan_watch: bool = False
    policy_dir: Path | None = None  # signing.pub and run (rendered pods); default <state>/policy


@dataclass
class _Running:
    sidecar: Sidecar
    membership: Membership | None
    state: StateDir | None
    instance: str
    app: AppProcess | None = None
    policies: PolicySync | None = None  # `eblocks apply`'s receiving end, as every instance's


def main(config: ProxyConfig) -> int:
    if config.instance is None:  # one name in the log lines, the metrics and the state dir
        config = dataclasses.replace(config, instance=f"{config.block}-proxy-{os.getpid()}")
    setup_logging(config.instance or config.block)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_proxy(config))
    return uvloop.run(run_proxy(config))


async def run_proxy(config: ProxyConfig) -> int:
    """Run the proxy (and its app) until SIGTERM or until the app exits."""
    running: _Running | None = None
    state: StateDir | None = None
    instance = config.instance or f"{config.block}-proxy-{os.getpid()}"
    try:
        spec = load_spec(config.spec) if config.spec is not None else None
        if spec is not None:
            state = (
                StateDir(config.state_dir)
                if config.state_dir is not None
                else StateDir.for_mesh(spec.mesh, config.state_root)
            )
            state.create()
        running = _assemble(config, spec, state, instance)
        await _start(config, spec, running)
    except (*CONFIG_ERRORS, ValueError) as exc:
        log.error("%s", exc)
        if state is not None:
            error = {"error": str(exc), "kind": type(exc).__name__}
            write_json(state.error_file(instance), error)
        if running is not None:
            await _shutdown(running, app_first=True)
        return EXIT_CONFIG
    return await _serve_until_done(config, running)


def _assemble(
    config: ProxyConfig, spec: MeshSpec | None, state: StateDir | None, instance: str
) -> _Running:
    if spec is None or state is None:
        check_upstreams(config.upstreams, config.app_port, None)
        app = (config.app_host, config.app_port)
        sidecar = Sidecar(config.block, app, tcp=config.tcp, instance=instance)
        return _Running(sidecar, None, None, instance)
    if config.block not in spec.blocks:
        known = ", ".join(sorted(spec.blocks))
        raise ValueError(f"--block {config.block!r} is not a block of {config.spec} ({known})")
    check_upstreams(config.upstreams, config.app_port, spec)
    _ensure_identity(spec, state, instance, config.block)
    membership = Membership(spec, state, config.block, instance)
    telemetry, auth, client = mesh_parts(
        spec, config.block, instance, state, str(config.spec), membership.resolver
    )
    sidecar = Sidecar(
        config.block,
        (config.app_host, config.app_port),
        tcp=config.tcp,
        upstreams=config.upstreams,
        settings=spec.settings(config.block),
        client=client,
        telemetry=telemetry,
        auth=auth,
        instance=instance,
    )
    sidecar.block.add_admin_get("/v1/members", membership.members)
    membership.publish_gauges(telemetry.hooks)
    policies = policy_sync(spec, sidecar.block, state, config.policy_dir)
    return _Running(sidecar, membership, state, instance, policies=policies)


def _ensure_identity(spec: MeshSpec, state: StateDir, instance: str, block: str) -> None:
    """A proxy the supervisor did not start issues its own SVID from the local mesh CA."""
    from eblocks.security import LocalIssuer, MeshCA
    from eblocks.security.local import ca_folder, identity_folder

    issuer = LocalIssuer(spec, state.path)
    if not issuer.enabled or (identity_folder(state.path, instance) / "svid.pem").exists():
        return
    if not MeshCA.exists(ca_folder(state.path)):
        raise SecurityError(
            f"mesh {spec.mesh!r} uses mTLS but {ca_folder(state.path)} holds no CA: "
            "start the mesh with `eblocks up` first (or pass its --state-dir)"
        )
    issuer.issue_block(instance, block)


async def _start(config: ProxyConfig, spec: MeshSpec | None, running: _Running) -> None:
    """Upstream ports, then the app, then (once its port accepts) the block."""
    sidecar = running.sidecar
    await sidecar.open_upstreams()
    if config.command:
        env = dict(os.environ)
        env["EBLOCKS_APP_PORT"] = str(config.app_port)
        for port in sidecar.upstreams:
            env[f"EBLOCKS_UPSTREAM_{port.target.upper().replace('-', '_')}"] = (
                f"127.0.0.1:{port.port}"
            )
        running.app = AppProcess(config.block, config.command, env=env)
        await running.app.start()
    bound = config.ready_timeout or (spec.defaults.ready_timeout if spec is not None else 30.0)
    await wait_for_port(config.block, config.app_host, config.app_port, bound, app=running.app)
    settings = sidecar.block.settings
    host = config.host or settings.host
    pm_port = config.port if config.port is not None else (settings.port or 0)
    await sidecar.serve(host, pm_port, config.admin_port, config.admin_host)
    if running.membership is not None:
        await running.membership.start(sidecar.block, host)
    if running.state is not None:
        write_json(
            running.state.run_file(running.instance),
            {
                "pid": os.getpid(),
                "host": host,
                "port": sidecar.block.port,
                "admin_port": sidecar.block.admin_port,
                "gossip_port": running.membership.gossip_port if running.membership else 0,
                "app_pid": running.app.pid if running.app is not None else None,
            },
        )
    log.info(
        "proxy %s: %s:%d -> %s:%d (admin %d)",
        config.block,
        host,
        sidecar.block.port,
        config.app_host,
        config.app_port,
        sidecar.block.admin_port,
    )


async def _serve_until_done(config: ProxyConfig, running: _Running) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiters: set[asyncio.Task[object]] = {asyncio.create_task(stop.wait(), name="signal")}
    if running.app is not None:
        waiters.add(asyncio.create_task(running.app.wait(), name="app"))
    if config.orphan_watch:
        waiters.add(asyncio.create_task(orphan_watch(stop), name="orphan"))
    auth = running.sidecar.block.auth
    background = [asyncio.create_task(auth.watch())] if auth is not None else []
    membership = running.membership
    if running.policies is not None and membership is not None:
        peers = membership.policy_peers if membership.gossip_mode else None
        background.append(asyncio.create_task(running.policies.run(peers), name="policies"))
    _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in (*pending, *background):
        task.cancel()
    app_exited = running.app is not None and running.app.returncode is not None
    if app_exited:
        log.info("the app exited: draining, then exiting with its code")
    code = await _shutdown(running, app_first=False)
    return exit_code_of(code) if app_exited else 0


async def _shutdown(running: _Running, *, app_first: bool) -> int:
    """Leave, drain the block, stop the app (SIGTERM), close the upstream ports.

    ``app_first``: the proxy never served (a failed start): stop the app at once.
    """
    sidecar, app, code = running.sidecar, running.app, 0
    if app is not None and app_first:
        code = await app.stop(grace=5.0)
    if running.membership is not None:
        await running.membership.leave()
    with contextlib.suppress(Exception):  # a block that never started has nothing to drain
        log.info("draining (up to %.1fs)", sidecar.block.settings.drain)
        await sidecar.stop_block()
    if app is not None:
        code = await app.stop(grace=sidecar.block.settings.drain + 2.0)
    await sidecar.close_upstreams()
    if running.membership is not None:
        await running.membership.aclose()
    log.info("stopped")
    return code
