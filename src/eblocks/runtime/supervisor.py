"""The local supervisor: one OS process per instance, restarted when it dies.

Each instance moves through::

    STARTING --bound + /readyz 200--> READY --exit--> BACKOFF --delay--> STARTING
        |                                                  (exit 78: FAILED, no restart)
        +--stop()--> STOPPING --exit--> STOPPED

Only READY instances are published to ``endpoints.json``; an instance that
exits is unpublished at once, so clients retry elsewhere or wait for it.

A worker block that a manager-worker pattern autoscales (``workers``) starts
within the pattern's bounds; a `PoolController` then starts instances and
retires them (unpublish, drain, SIGTERM) as the managers ask
(`eblocks.runtime.scaling`). A retired instance is removed, not restarted.

In ``discovery.mode: gossip`` the supervisor is only a seed: it writes the mesh
key to ``gossip.key`` (0600) and the gossip addresses of READY instances to
``gossip.json``; the instances find each other through gossip, and `start()`
returns once every instance's ``/v1/members`` lists every instance alive.

Unless ``security.mtls`` is ``disable`` everywhere, the supervisor holds the
mesh CA (`eblocks.security.LocalIssuer`): it writes each instance's SVID before
spawning it, one for the CLI and its own (``client/supervisor``: the admin
ports then speak TLS, and ``/v1/members`` needs a mesh certificate), and renews
them at half their lifetime.

It also keeps the policy signing key in ``<state>/policy/`` (`eblocks apply`
signs with it, instances verify with its public half), names each run with a
new id and clears the last applied bundle: a new run starts from the spec's
policies, and bundles of an earlier run are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from eblocks._types import Endpoint
from eblocks.discovery import write_endpoints
from eblocks.discovery.member import member_id
from eblocks.discovery.seeds import prepare_key, write_supervisor_seeds
from eblocks.errors import DiscoveryError, SecurityError, SupervisorError
from eblocks.policies.keys import bundle_file, ensure_signing_key, new_run, policy_folder
from eblocks.runtime.scaling import PoolController, initial_count
from eblocks.runtime.state import EXIT_CONFIG, StateDir, read_json, write_json
from eblocks.security import LocalIssuer
from eblocks.security.admin import SUPERVISOR_HOLDER, AdminAccess
from eblocks.spec import MeshSpec

__all__ = ["InstanceState", "Supervisor", "restart_delay"]

log = logging.getLogger("eblocks.supervisor")


class InstanceState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


def restart_delay(failures: int, *, base: float = 0.25, cap: float = 10.0) -> float:
    """Exponential backoff before restart number ``failures`` (pure)."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


@dataclass
class Instance:
    block: str
    id: str
    host: str
    fixed_port: int | None
    state: InstanceState = InstanceState.STARTING
    proc: asyncio.subprocess.Process | None = None
    port: int = 0
    admin_port: int = 0
    gossip_port: int = 0
    restarts: int = 0
    failures: int = 0
    started_at: float = 0.0
    error: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    @property
    def ready(self) -> bool:
        return self.state is InstanceState.READY


class Supervisor:
    """Runs every instance of ``spec`` on this machine; state lives in ``state``."""

    def __init__(self, spec: MeshSpec, spec_path: Path, state: StateDir) -> None:
        self.spec = spec
        self.spec_path = spec_path.absolute()
        self.state = state
        self.instances = [
            Instance(
                name,
                f"{name}-{i}",
                spec.settings(name).host,
                spec.settings(name).port,
                labels=dict(block.labels),
            )
            for name, block in spec.blocks.items()
            for i in range(initial_count(spec, name))
        ]
        self._stopping = False
        self._monitors: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._admin = AdminAccess(spec, None)  # with its identity once _prepare issued it
        self._failure = ""  # why start() failed; kept in supervisor.json after stop()
        self._pools = PoolController(self)
        self._pools_task: asyncio.Task[None] | None = None
        self._issuer = LocalIssuer(spec, state.path)

    async def start(self) -> None:
        """Start every instance and wait (bounded) until all are ready."""
        try:
            self._prepare()
        except SupervisorError as exc:  # said in supervisor.json: `up -d` shows it
            self._failure = str(exc)
            raise
        self._admin = AdminAccess.of(self.spec, self.state.path, SUPERVISOR_HOLDER)
        self._http = self._admin.session(aiohttp.ClientTimeout(total=1.0))
        self._write_supervisor("starting")
        for inst in self.instances:
            await self._spawn(inst)
        began = time.monotonic()
        try:
            await asyncio.wait_for(self._all_ready(), self.spec.defaults.ready_timeout)
        except TimeoutError:
            late = ", ".join(i.id for i in self.instances if i.state is not InstanceState.READY)
            self._failure = f"not ready in time: {late}"
            self._write_supervisor("failed", self._failure)
            bound = self.spec.defaults.ready_timeout
            raise SupervisorError(
                f"instances not ready within {bound:g}s: {late} (see `eblocks logs <block>`)"
            ) from None
        except SupervisorError as exc:
            self._failure = str(exc)
            self._write_supervisor("failed", self._failure)
            raise
        if self.spec.discovery.mode == "gossip":
            left = max(1.0, self.spec.defaults.ready_timeout - (time.monotonic() - began))
            try:
                await asyncio.wait_for(self._converged(), left)
            except TimeoutError:
                self._failure = f"gossip views did not converge within {left:.0f}s"
                self._write_supervisor("failed", self._failure)
                raise SupervisorError(
                    f"{self._failure} (see `eblocks logs <block>`; UDP blocked?)"
                ) from None
        if self._pools:
            self._pools_task = asyncio.create_task(self._pools.run(), name="pools")
        self._write_supervisor("ready")

    async def stop(self) -> None:
        """Stop every instance: quiesce, SIGTERM, wait for the drain, SIGKILL the late ones.

        Quiesce first: while every instance still serves, wait (up to the longest
        ``drain``) until none has a request in flight at the same moment. A request
        that still has to call another block would otherwise find it stopped
        (each instance drains only its own requests, and they all got SIGTERM).
        """
        self._stopping = True
        if self._pools_task is not None:
            self._pools_task.cancel()
            await asyncio.gather(self._pools_task, return_exceptions=True)
        await self._pools.aclose()
        drain = max(self.spec.settings(b).drain for b in self.spec.blocks)
        await self._quiesce(drain)
        for inst in self.instances:
            inst.state = InstanceState.STOPPING
            if inst.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    inst.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        self._publish()
        await self._reap(drain + 2.0)
        for task in self._monitors:
            task.cancel()
        await asyncio.gather(*self._monitors, return_exceptions=True)
        for inst in self.instances:
            inst.state = InstanceState.STOPPED
        self._publish()
        if self._http is not None:
            await self._http.close()
        self._write_supervisor("stopped", self._failure)

    def _prepare(self) -> None:
        for inst in self.instances:
            if self.spec.blocks[inst.block].external is not None and inst.id != f"{inst.block}-0":
                raise SupervisorError(
                    f"block {inst.block!r} is external: its program listens on one fixed port, "
                    "so this machine runs one replica of it (set replicas: 1)"
                )
        self.state.create()
        if self.spec.discovery.mode == "gossip":
            try:
                prepare_key(self.spec.discovery, self.spec_path.parent, self.state.path)
            except DiscoveryError as exc:
                raise SupervisorError(str(exc)) from exc
        if self.state.spec != self.spec_path:
            self.state.spec.write_bytes(self.spec_path.read_bytes())
        if self._issuer.enabled:
            try:
                self._issuer.issue_client()
                self._issuer.issue_client(SUPERVISOR_HOLDER)  # probes and /v1/members
            except SecurityError as exc:
                raise SupervisorError(f"mesh identity: {exc}") from exc
            self._monitors.append(asyncio.create_task(self._renew_svids()))
        if ensure_signing_key(self.state.path):
            log.info("created the policy signing key in %s", policy_folder(self.state.path))
        new_run(self.state.path)  # bundles of an earlier run are refused from now on
        bundle_file(self.state.path).unlink(missing_ok=True)  # a new run starts from the spec
        for stale in [*self.state.path.glob("run/*"), *self.state.path.glob("scale/*")]:
            stale.unlink()
        self._publish()

    async def _spawn(self, inst: Instance) -> None:
        self.state.run_file(inst.id).unlink(missing_ok=True)
        self.state.error_file(inst.id).unlink(missing_ok=True)
        logfile = self.state.log(inst.id).open("ab")
        logfile.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {inst.id}\n".encode())
        logfile.flush()
        env = dict(os.environ)
        env.update(self.spec.blocks[inst.block].env)
        spec_dir = str(self.spec_path.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (spec_dir, env.get("PYTHONPATH", "")) if p)
        env["EBLOCKS_SPEC_DIR"] = spec_dir
        if self._issuer.enabled:
            self._issuer.issue_block(inst.id, inst.block)  # a fresh SVID for each life
        env["EBLOCKS_MESH"], env["EBLOCKS_BLOCK"], env["EBLOCKS_INSTANCE"] = (
            self.spec.mesh,
            inst.block,
            inst.id,
        )
        env["EBLOCKS_STATE_DIR"] = str(self.state.path)  # where a block may keep its own data
        env["EBLOCKS_SCALER"] = "local"  # pools are ours, even inside a Kubernetes pod
        try:
            inst.proc = await asyncio.create_subprocess_exec(
                *self._argv(inst),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                env=env,
                cwd=spec_dir,  # an external block's command is relative to its spec
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops them
            )
        finally:
            logfile.close()
        inst.state, inst.started_at = InstanceState.STARTING, time.monotonic()
        self._write_state()
        self._monitors.append(asyncio.create_task(self._monitor(inst, inst.proc)))

    def _argv(self, inst: Instance) -> list[str]:
        """An instance process; for an ``external`` block, the sidecar proxy and its app."""
        external = self.spec.blocks[inst.block].external
        where = ["--spec", str(self.state.spec), "--block", inst.block, "--instance", inst.id]
        where += ["--host", inst.host, "--port", str(inst.fixed_port or 0)]
        if external is None:
            module = [sys.executable, "-m", "eblocks.runtime.instance"]
            return [*module, *where, "--state-dir", str(self.state.path)]
        from eblocks.sidecar.options import spec_upstreams

        argv = [sys.executable, "-m", "eblocks", "proxy", *where]
        argv += ["--mesh-state", str(self.state.path), "--app-port", str(external.port)]
        argv += ["--supervised"] + (["--tcp"] if external.protocol == "tcp" else [])
        for up in spec_upstreams(self.spec, inst.block):
            argv += ["--upstream", str(up)]
        if external.ready_timeout is not None:
            argv += ["--ready-timeout", str(external.ready_timeout)]
        return [*argv, "--", *external.command]

    async def _monitor(self, inst: Instance, proc: asyncio.subprocess.Process) -> None:
        """Wait for readiness, then for exit; restart with backoff unless stopping."""
        ready = asyncio.create_task(self._wait_ready(inst, proc))
        code = await proc.wait()
        ready.cancel()
        if self._stopping or inst.state is InstanceState.STOPPING:  # stopped or retired
            return
        ran = time.monotonic() - inst.started_at
        inst.failures = 1 if ran > 30.0 else inst.failures + 1
        # unpublished at once (the state first: _publish lists the READY ones), so no
        # caller is sent to a dead port while the restart waits
        if code == EXIT_CONFIG:
            error = read_json(self.state.error_file(inst.id)) or {}
            inst.state, inst.error = InstanceState.FAILED, error.get("error", f"exit {code}")
            log.error("%s cannot start: %s", inst.id, inst.error)
            self._publish()
            return
        delay = restart_delay(inst.failures)
        inst.state, inst.error = InstanceState.BACKOFF, f"exited with {_describe(code)}"
        log.warning("%s %s; restarting in %.2fs", inst.id, inst.error, delay)
        self._publish()
        await asyncio.sleep(delay)
        if not self._stopping and inst.state is InstanceState.BACKOFF:  # not retired meanwhile
            inst.restarts += 1
            await self._spawn(inst)

    # -- pools (called by the PoolController) -----------------------------------------

    def pool_members(self, block: str) -> list[Instance]:
        """The instances of ``block`` that are not on their way out."""
        gone = (InstanceState.STOPPING, InstanceState.STOPPED)
        return [i for i in self.instances if i.block == block and i.state not in gone]

    async def spawn_instance(self, block: str) -> Instance:
        """Start one more instance of ``block`` (the lowest free index names it)."""
        taken = {i.id for i in self.instances}
        index = next(n for n in range(len(taken) + 1) if f"{block}-{n}" not in taken)
        settings = self.spec.settings(block)
        inst = Instance(
            block,
            f"{block}-{index}",
            settings.host,
            settings.port,
            labels=dict(self.spec.blocks[block].labels),
        )
        self.instances.append(inst)
        await self._spawn(inst)
        return inst

    async def retire_instance(self, inst: Instance, *, settle: float = 0.3) -> None:
        """Unpublish ``inst``, let its in-flight work finish, stop it and forget it.

        ``settle`` gives the resolvers (which re-read the endpoints every 0.1 s)
        time to stop routing to it; in gossip mode the instance itself leaves
        the membership when it gets SIGTERM, before it drains.
        """
        was_ready = inst.ready
        inst.state = InstanceState.STOPPING
        self._publish()
        drain = self.spec.settings(inst.block).drain
        if was_ready and self.spec.discovery.mode == "supervisor":
            await asyncio.sleep(settle)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle(inst), drain)
        if inst.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                inst.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            await self._reap_one(inst, drain + 2.0)
        if inst in self.instances:
            self.instances.remove(inst)
        self._write_state()
        log.info("%s retired", inst.id)

    async def _quiesce(self, bound: float) -> None:
        """Return once no ready instance has a request in flight, or after ``bound`` s."""
        if self._http is None:
            return
        ready = [i for i in self.instances if i.ready and i.admin_port]
        deadline = time.monotonic() + bound
        while ready and time.monotonic() < deadline:
            counts = await asyncio.gather(*(self._inflight(i) for i in ready))
            if not any(counts):
                return
            await asyncio.sleep(0.05)

    async def _inflight(self, inst: Instance) -> int:
        """``inst``'s requests in flight (its ``/readyz``); 0 when it does not answer."""
        assert self._http is not None
        url = self._admin.url(inst.block, inst.host, inst.admin_port, "/readyz")
        try:
            async with self._http.get(url) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 0
        return int(body.get("inflight") or 0) if isinstance(body, dict) else 0

    async def _idle(self, inst: Instance) -> None:
        """Return once ``inst`` reports no request in flight (or stops answering)."""
        while inst.pid is not None and await self._inflight(inst):  # noqa: ASYNC110 - a poll
            await asyncio.sleep(0.05)

    async def _reap_one(self, inst: Instance, grace: float) -> None:
        proc = inst.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.wait_for(proc.wait(), 5.0)

    async def _renew_svids(self) -> None:
        """Re-issue SVIDs at half life, and all of them after `eblocks ca rotate`.

        Every two seconds at most: a check is one read of the small CA file and a
        date per SVID, and a rotated CA (and the gossip key with it) is in force
        within seconds of `eblocks ca rotate`, not after a long period.
        """
        period = min(2.0, max(0.5, self.spec.security.svid_ttl / 20))
        while True:
            await asyncio.sleep(period)
            try:
                renewed = self._issuer.renew_due()
            except SecurityError as exc:
                log.error("SVID renewal failed: %s", exc)
                continue
            if renewed:
                self._admin.refresh()
                log.info("renewed SVIDs: %s", ", ".join(renewed))

    async def _wait_ready(self, inst: Instance, proc: asyncio.subprocess.Process) -> None:
        run_file = self.state.run_file(inst.id)
        while proc.returncode is None:
            info = read_json(run_file)
            if info is not None and await self._probe(inst, int(info["admin_port"])):
                if inst.state is not InstanceState.STARTING:
                    return  # retired while it started: never publish it
                inst.port, inst.admin_port = int(info["port"]), int(info["admin_port"])
                inst.gossip_port = int(info.get("gossip_port") or 0)
                inst.state, inst.error = InstanceState.READY, ""
                self._publish()
                return
            await asyncio.sleep(0.05)

    async def _probe(self, inst: Instance, admin_port: int) -> bool:
        assert self._http is not None  # set in start() before any instance is spawned
        try:
            url = self._admin.url(inst.block, inst.host, admin_port, "/readyz")
            async with self._http.get(url) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _converged(self) -> None:
        """Wait until every instance's gossip view lists every instance alive."""
        assert self._http is not None
        everyone = {member_id(i.id, i.host) for i in self.instances}
        while True:
            views = await asyncio.gather(*(self._alive_view(i) for i in self.instances))
            if all(view >= everyone for view in views):
                return
            await asyncio.sleep(0.1)

    async def _alive_view(self, inst: Instance) -> set[str]:
        assert self._http is not None
        if inst.state is not InstanceState.READY:
            return set()
        try:
            url = self._admin.url(inst.block, inst.host, inst.admin_port, "/v1/members")
            async with self._http.get(url) as resp:
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return set()
        return {m["instance"] for m in body.get("members", []) if m.get("status") == "alive"}

    async def _all_ready(self) -> None:
        while True:
            failed = [i for i in self.instances if i.state is InstanceState.FAILED]
            if failed:
                raise SupervisorError("; ".join(f"{i.id}: {i.error}" for i in failed))
            if all(i.state is InstanceState.READY for i in self.instances):
                return
            await asyncio.sleep(0.05)

    async def _reap(self, grace: float) -> None:
        procs = [i.proc for i in self.instances if i.proc is not None and i.proc.returncode is None]
        if not procs:
            return
        _, late = await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=grace)
        if late:
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.wait(late, timeout=5.0)

    def _publish(self) -> None:
        ready = [
            Endpoint(i.block, i.id, i.host, i.port, i.labels)
            for i in self.instances
            if i.state is InstanceState.READY
        ]
        write_endpoints(self.state.path, ready)
        if self.spec.discovery.mode == "gossip":
            write_supervisor_seeds(
                self.state.path,
                (
                    {"instance": i.id, "host": i.host, "gossip_port": i.gossip_port}
                    for i in self.instances
                    if i.state is InstanceState.READY
                ),
            )
        self._write_state()

    def _write_state(self) -> None:
        rows = [
            {
                "block": i.block,
                "instance": i.id,
                "pid": i.pid,
                "host": i.host,
                "port": i.port,
                "admin_port": i.admin_port,
                "gossip_port": i.gossip_port,
                "ready": i.state is InstanceState.READY,
                "state": i.state.value,
                "restarts": i.restarts,
                "error": i.error,
            }
            for i in self.instances
        ]
        write_json(self.state.state, {"mesh": self.spec.mesh, "instances": rows})

    def _write_supervisor(self, status: str, error: str = "") -> None:
        write_json(
            self.state.supervisor,
            {
                "pid": os.getpid(),
                "mesh": self.spec.mesh,
                "spec": str(self.spec_path),
                "status": status,
                "error": error,
            },
        )


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
