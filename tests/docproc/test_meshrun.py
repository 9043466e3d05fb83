"""`RunningMesh.up` stops only a mesh it started (the CLI is faked; the integration test
in tests/integration/test_docproc.py runs the same cases against a real mesh)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from docproc.meshrun import MeshAlreadyRunning, MeshUpError, RunningMesh, down_command

SPEC = Path(__file__).resolve().parents[2] / "examples" / "docproc" / "mesh.yaml"
REFUSED = (
    "error: mesh 'docproc' is already running (supervisor pid 4242); stop it with eblocks down"
)


class FakeCli(RunningMesh):
    """A mesh whose ``eblocks`` commands are recorded and answered with ``answer``."""

    def __init__(self, root: Path, answer: subprocess.CompletedProcess[str]) -> None:
        super().__init__(SPEC, root)
        self.answer = answer
        self.commands: list[tuple[str, ...]] = []

    def _cli(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        self.commands.append(args)
        return self.answer


def _supervisor(mesh: RunningMesh, status: str, pid: int) -> None:
    mesh.state.path.mkdir(parents=True, exist_ok=True)
    mesh.state.supervisor.write_text(json.dumps({"status": status, "pid": pid}))


def _done(code: int, stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["eblocks"], code, "", stderr)


def test_a_running_mesh_is_refused_before_up_and_left_alone(tmp_path: Path) -> None:
    mesh = FakeCli(tmp_path / "state", _done(0))
    _supervisor(mesh, "ready", os.getpid())  # a live process stands in for the supervisor

    with pytest.raises(MeshAlreadyRunning) as caught:
        mesh.up()

    assert mesh.commands == []  # neither `up` nor `down`
    assert caught.value.pid == os.getpid()
    assert f"supervisor pid {os.getpid()}" in str(caught.value)
    assert caught.value.down_command == down_command(tmp_path / "state")
    assert str(caught.value).endswith(f"stop it with `{mesh.down_command}`")
    assert "\n" not in str(caught.value)


def test_an_up_refused_as_already_running_does_not_stop_the_mesh(tmp_path: Path) -> None:
    """Another `up` won the race after the check: the failure is not ours to clean up."""
    mesh = FakeCli(tmp_path / "state", _done(1, REFUSED))
    _supervisor(mesh, "stopped", os.getpid())  # down() would act: there is a supervisor.json

    with pytest.raises(MeshAlreadyRunning):
        mesh.up()

    assert [c[0] for c in mesh.commands] == ["up"]


def test_a_failed_start_is_cleaned_up(tmp_path: Path) -> None:
    mesh = FakeCli(tmp_path / "state", _done(1, "error: mesh 'docproc' not ready in time"))
    _supervisor(mesh, "starting", 2**22 + 1)  # above pid_max: no such process, not running

    with pytest.raises(MeshUpError, match="not ready in time") as caught:
        mesh.up()

    assert not isinstance(caught.value, MeshAlreadyRunning)
    assert [c[0] for c in mesh.commands] == ["up", "down"]


def test_the_down_command_names_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert down_command(tmp_path / ".docproc-demo" / "state") == (
        "eblocks down --state-dir .docproc-demo/state"
    )
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # not below it: the absolute path, quoted for a shell
    elsewhere = tmp_path / "other dir" / "state"
    assert down_command(elsewhere) == f"eblocks down --state-dir '{elsewhere.resolve()}'"
