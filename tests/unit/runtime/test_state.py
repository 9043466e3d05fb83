"""Which mesh a command means when it names none (`find_state`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eblocks.errors import SupervisorError
from eblocks.runtime.state import StateDir, find_state, read_json, running, write_json


@pytest.fixture
def other_pid() -> Iterator[int]:
    """A live process that is not this one (a supervisor's stand-in), stopped afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _mesh(root: Path, name: str, status: str, pid: int) -> StateDir:
    state = StateDir.for_mesh(name, root)
    state.create()
    write_json(state.supervisor, {"pid": pid, "mesh": name, "status": status, "error": ""})
    return state


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid  # reaped: no process has it (until the kernel reuses it)


def test_the_only_running_mesh_is_meant_whatever_else_lies_stopped_there(
    tmp_path: Path, other_pid: int
) -> None:
    _mesh(tmp_path, "textpipe", "stopped", _dead_pid())
    _mesh(tmp_path, "broken", "failed", _dead_pid())
    _mesh(tmp_path, "hybrid", "ready", other_pid)
    assert find_state(None, tmp_path).mesh == "hybrid"


def test_a_ready_status_whose_supervisor_died_is_not_running(tmp_path: Path) -> None:
    state = _mesh(tmp_path, "textpipe", "ready", _dead_pid())
    assert not running(state)
    _mesh(tmp_path, "hybrid", "stopped", os.getpid())
    with pytest.raises(SupervisorError, match=r"\(there, none running\): hybrid, textpipe;"):
        find_state(None, tmp_path)


def test_two_running_meshes_are_named_and_one_must_be_picked(
    tmp_path: Path, other_pid: int
) -> None:
    _mesh(tmp_path, "textpipe", "starting", other_pid)
    _mesh(tmp_path, "hybrid", "ready", other_pid)
    _mesh(tmp_path, "old", "stopped", _dead_pid())
    with pytest.raises(
        SupervisorError, match=r"\(running\): hybrid, textpipe; pick one with --mesh"
    ):
        find_state(None, tmp_path)


def test_a_lone_mesh_is_meant_even_stopped_and_a_named_one_always(tmp_path: Path) -> None:
    _mesh(tmp_path, "textpipe", "failed", _dead_pid())
    assert find_state(None, tmp_path).mesh == "textpipe"  # its logs say why it failed
    assert find_state("textpipe", tmp_path).mesh == "textpipe"
    with pytest.raises(SupervisorError, match="no mesh 'hybrid'"):
        find_state("hybrid", tmp_path)
    (tmp_path / "textpipe" / "supervisor.json").write_text("{not json", encoding="utf-8")
    assert not running(StateDir.for_mesh("textpipe", tmp_path))


def test_an_unusable_state_dir_is_named_not_a_traceback(tmp_path: Path) -> None:
    afile = tmp_path / "mesh.yaml"
    afile.write_text("x")
    state = StateDir.for_mesh("m", afile)  # a path through a file
    with pytest.raises(SupervisorError, match=r"cannot use the state dir .*: Not a directory"):
        state.create()
    with pytest.raises(SupervisorError, match="cannot read the state file"):
        read_json(state.supervisor)
