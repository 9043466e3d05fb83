"""The state directory of one mesh on this machine: ``.eblocks/<mesh>/``.

supervisor.json   the supervisor's pid, spec path and status (starting|ready|failed|stopped)
state.json        one row per instance: block, pid, address, ready, restarts, state
endpoints.json    ready endpoints per block (read by `SupervisorResolver`)
spec.yaml         the spec the mesh was started with
logs/<inst>.log   each instance's stdout and stderr
run/<inst>.json   written by an instance once its sockets are bound
run/<inst>.error  written by an instance that cannot start (import error, port in use)
scale/<inst>.json the pool sizes a manager instance asks for (`LocalProcessScaler`)
pools.json        autoscaled pools: bounds, target, running, ready (written by the supervisor)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from eblocks.errors import SupervisorError

__all__ = [
    "DEFAULT_ROOT",
    "EXIT_CONFIG",
    "StateDir",
    "find_state",
    "pid_alive",
    "read_json",
    "running",
    "write_json",
]

DEFAULT_ROOT = Path(os.environ.get("EBLOCKS_STATE_DIR", ".eblocks"))
EXIT_CONFIG = 78
"""An instance's exit code when its configuration stops it (EX_CONFIG): no restart.

Defined here, not in `instance`, so that the supervisor (imported by the
package) does not import the module `python -m eblocks.runtime.instance` runs.
"""


@dataclass(frozen=True, slots=True)
class StateDir:
    path: Path

    @classmethod
    def for_mesh(cls, mesh: str, root: Path | None = None) -> StateDir:
        return cls((root or DEFAULT_ROOT).absolute() / mesh)

    @property
    def mesh(self) -> str:
        return self.path.name

    @property
    def supervisor(self) -> Path:
        return self.path / "supervisor.json"

    @property
    def state(self) -> Path:
        return self.path / "state.json"

    @property
    def spec(self) -> Path:
        return self.path / "spec.yaml"

    def log(self, instance: str) -> Path:
        return self.path / "logs" / f"{instance}.log"

    def run_file(self, instance: str) -> Path:
        return self.path / "run" / f"{instance}.json"

    def error_file(self, instance: str) -> Path:
        return self.path / "run" / f"{instance}.error"

    def scale_request(self, instance: str) -> Path:
        return self.path / "scale" / f"{instance}.json"

    @property
    def pools(self) -> Path:
        return self.path / "pools.json"

    def create(self) -> None:
        """Make the state dir and its folders; SupervisorError naming it when it is unusable."""
        try:
            for sub in ("logs", "run", "scale"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SupervisorError(
                f"cannot use the state dir {self.path}: {exc.strerror or exc} "
                "(give a writable --state-dir or EBLOCKS_STATE_DIR)"
            ) from exc


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError as exc:
        raise SupervisorError(f"{path}: corrupt state file: {exc}") from exc
    except OSError as exc:  # a path through a file, no permission
        raise SupervisorError(f"{path}: cannot read the state file: {exc.strerror or exc}") from exc


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(state: StateDir) -> bool:
    """Whether the supervisor of ``state`` is starting or serving (not stopped, not failed)."""
    try:
        found = read_json(state.supervisor)
    except SupervisorError:
        return False
    if not isinstance(found, dict) or found.get("status") not in ("starting", "ready"):
        return False
    pid = found.get("pid")
    return type(pid) is int and pid_alive(pid)


def find_state(mesh: str | None, root: Path | None = None) -> StateDir:
    """The state dir of ``mesh``; else of the only mesh running under ``root``, else of the
    only one there (stopped or failed: its logs and status are still worth reading)."""
    base = (root or DEFAULT_ROOT).absolute()
    if mesh is not None:
        state = StateDir(base / mesh)
        if not state.supervisor.exists():
            raise SupervisorError(f"no mesh {mesh!r} under {base} (start it with `eblocks up`)")
        return state
    found = [StateDir(p.parent) for p in sorted(base.glob("*/supervisor.json"))]
    if not found:
        raise SupervisorError(f"no mesh found under {base} (start one with `eblocks up mesh.yaml`)")
    if len(found) == 1:
        return found[0]
    live = [state for state in found if running(state)]
    if len(live) == 1:
        return live[0]
    names = ", ".join(state.mesh for state in (live or found))
    which = "running" if live else "there, none running"
    raise SupervisorError(f"several meshes under {base} ({which}): {names}; pick one with --mesh")
