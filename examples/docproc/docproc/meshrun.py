"""Run a scenario's mesh the way a user does: ``eblocks up --detach`` ... ``eblocks down``.

`RunningMesh` starts a spec (optionally with some blocks' replicas rewritten,
for the 1/2/4-worker variants) under its own state root, hands out a mesh
client, reads each instance's CPU time and peak RSS, and always stops the
mesh again, also when the caller fails. It stops only a mesh it started: when
the mesh is already running under that root (a ``demo --keep`` left it up),
`RunningMesh.up` raises `MeshAlreadyRunning` and leaves it alone.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import yaml

from eblocks import MeshClient, SupervisorResolver, load_spec
from eblocks.errors import SupervisorError
from eblocks.runtime import StateDir
from eblocks.runtime.state import read_json, running
from eblocks.security import Auth
from eblocks.security.auth import mtls_mode
from eblocks.security.local import CLI_HOLDER, identity_folder

__all__ = [
    "MeshAlreadyRunning",
    "MeshUpError",
    "ProcessStats",
    "RunningMesh",
    "down_command",
    "shown_path",
    "with_replicas",
]

UP_TIMEOUT = 180.0
_ALREADY_RUNNING = "is already running"  # what `eblocks up` says when it refuses


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def down_command(root: Path) -> str:
    """The shell command that stops the mesh running under the state root ``root``."""
    return f"eblocks down --state-dir {shlex.quote(shown_path(root))}"


class MeshUpError(RuntimeError):
    """``eblocks up`` failed; the message gives its output."""


class MeshAlreadyRunning(MeshUpError):
    """The mesh already runs under this state root: not started, and not stopped, by us."""

    def __init__(self, mesh: str, root: Path, pid: int | None) -> None:
        self.mesh, self.root, self.pid = mesh, root, pid
        self.down_command = down_command(root)
        running_as = f" (supervisor pid {pid})" if pid else ""
        super().__init__(
            f"mesh {mesh!r} is already running under {shown_path(root)}{running_as}; "
            f"stop it with `{self.down_command}`"
        )


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """CPU seconds (user + system) and peak RSS of one block's instances, summed."""

    block: str
    instances: int
    cpu_seconds: float
    peak_rss: int


def with_replicas(spec: Path, replicas: Mapping[str, int], out: Path) -> Path:
    """A copy of ``spec`` in ``out`` whose blocks run ``replicas[block]`` instances."""
    data: dict[str, Any] = yaml.safe_load(spec.read_text(encoding="utf-8"))
    for block, count in replicas.items():
        if block not in data.get("blocks", {}):
            raise KeyError(f"{spec}: no block {block!r} to scale")
        entry = data["blocks"][block] or {}
        entry["replicas"] = count
        data["blocks"][block] = entry
    out.mkdir(parents=True, exist_ok=True)
    target = out / spec.name
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


class RunningMesh:
    """One mesh, up under ``root`` for the duration of a ``with`` block."""

    def __init__(self, spec: Path, root: Path, env: Mapping[str, str] | None = None) -> None:
        self.spec_path = spec
        self.spec = load_spec(spec)
        self.root = root
        self.state = StateDir.for_mesh(self.spec.mesh, root)
        self.env = {**os.environ, **(env or {})}
        self.startup_seconds = 0.0

    def _cli(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "eblocks", *args, "--state-dir", str(self.root)]
        return subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    @property
    def down_command(self) -> str:
        """The shell command that stops this mesh."""
        return down_command(self.root)

    def supervisor_pid(self) -> int | None:
        """The pid of this mesh's supervisor if it is starting or serving, else None."""
        if not running(self.state):
            return None
        try:
            pid = (read_json(self.state.supervisor) or {}).get("pid")
        except SupervisorError:
            return None
        return pid if type(pid) is int else None

    def refuse_if_running(self) -> None:
        """Raise `MeshAlreadyRunning` if the mesh already runs under this state root."""
        pid = self.supervisor_pid()
        if pid is not None:
            raise MeshAlreadyRunning(self.spec.mesh, self.root, pid)

    def up(self) -> float:
        """Start every instance and wait until all are ready; the seconds it took.

        A mesh already running under the root is left alone (`MeshAlreadyRunning`);
        a failed start is cleaned up (`MeshUpError`): ``eblocks up`` does not stop a
        mesh that was not ready in time.
        """
        self.refuse_if_running()
        began = time.perf_counter()
        done = self._cli("up", str(self.spec_path), "--detach", timeout=UP_TIMEOUT)
        if done.returncode != 0:
            if _ALREADY_RUNNING in done.stderr:  # another `up` came first: not ours to stop
                raise MeshAlreadyRunning(self.spec.mesh, self.root, self.supervisor_pid())
            self.down()
            output = (done.stdout + done.stderr).strip()
            raise MeshUpError(f"eblocks up {self.spec_path} failed: {output}")
        self.startup_seconds = time.perf_counter() - began
        return self.startup_seconds

    def down(self) -> None:
        if self.state.supervisor.exists():
            self._cli("down", "--mesh", self.spec.mesh, timeout=UP_TIMEOUT)

    def __enter__(self) -> RunningMesh:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def client(self, source: str = "docproc") -> MeshClient:
        """A client of this mesh holding the CLI's identity (the mesh speaks mTLS)."""
        auth = Auth.for_cli(self.spec, self.state.path)
        resolver = SupervisorResolver(self.state.path)
        return MeshClient(self.spec, resolver, source=source, auth=auth)

    def instances(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (read_json(self.state.state) or {}).get("instances", [])
        return rows

    def address(self, block: str) -> str | None:
        """``https://host:port`` (``http://`` without TLS) of ``block``'s first ready instance."""
        scheme = "http" if mtls_mode(self.spec, block) == "disable" else "https"
        for row in self.instances():
            if row.get("block") == block and row.get("ready"):
                return f"{scheme}://{row['host']}:{row['port']}"
        return None

    @property
    def ca_bundle(self) -> Path:
        """The mesh's trust bundle: clients of an ingress block verify its certificate with it."""
        return identity_folder(self.state.path, CLI_HOLDER) / "bundle.pem"

    def process_stats(self) -> dict[str, ProcessStats]:
        """Per block: CPU seconds so far and peak RSS of its live instances."""
        totals: dict[str, list[float]] = {}
        for row in self.instances():
            pid = row.get("pid")
            if not pid:
                continue
            try:
                proc = psutil.Process(int(pid))
                times = proc.cpu_times()
                peak = _peak_rss(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            entry = totals.setdefault(row["block"], [0, 0.0, 0])
            entry[0] += 1
            entry[1] += times.user + times.system
            entry[2] += peak
        return {
            block: ProcessStats(block, int(n), cpu, int(rss))
            for block, (n, cpu, rss) in sorted(totals.items())
        }


def _peak_rss(proc: psutil.Process) -> int:
    """The high-water mark of resident memory (VmHWM), else the current RSS."""
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(proc.memory_info().rss)
