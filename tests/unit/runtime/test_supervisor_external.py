"""What the supervisor runs for an ``external`` block: the sidecar proxy and its program."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from eblocks.errors import SupervisorError
from eblocks.runtime import StateDir, Supervisor
from eblocks.spec import parse_spec

SPEC = """apiVersion: eblocks/v1
mesh: m
blocks:
  web:
    external: {command: [./web, --port, "8080"], port: 8080, upstreams: {db: 9002, api: 9001}}
  db:
    external: {command: [postgres], port: 5432, protocol: tcp, ready_timeout: 45s}
  api: {handler: "h:api", replicas: 2}
"""


def _supervisor(tmp_path: Path, text: str = SPEC) -> Supervisor:
    spec_path = tmp_path / "mesh.yaml"
    spec_path.write_text(text)
    return Supervisor(parse_spec(text), spec_path, StateDir(tmp_path / "state" / "m"))


def test_an_external_block_runs_as_eblocks_proxy_with_its_command(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path)
    web = next(i for i in supervisor.instances if i.block == "web")
    state = str(tmp_path / "state" / "m")
    assert supervisor._argv(web) == [
        sys.executable, "-m", "eblocks", "proxy",
        "--spec", f"{state}/spec.yaml", "--block", "web", "--instance", "web-0",
        "--host", "127.0.0.1", "--port", "0",
        "--mesh-state", state, "--app-port", "8080", "--supervised",
        "--upstream", "api=9001", "--upstream", "db=9002/tcp",
        "--", "./web", "--port", "8080",
    ]  # fmt: skip


def test_tcp_mode_and_ready_timeout_reach_the_proxy(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path)
    db = next(i for i in supervisor.instances if i.block == "db")
    argv = supervisor._argv(db)
    assert argv[argv.index("--supervised") :] == [
        "--supervised", "--tcp", "--ready-timeout", "45.0", "--", "postgres",
    ]  # fmt: skip


def test_python_blocks_still_run_the_instance_module(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path)
    api = next(i for i in supervisor.instances if i.block == "api")
    assert supervisor._argv(api)[:3] == [sys.executable, "-m", "eblocks.runtime.instance"]


def test_an_external_block_runs_one_replica_on_this_machine(tmp_path: Path) -> None:
    two = SPEC.replace("ready_timeout: 45s}", "ready_timeout: 45s}\n    replicas: 2")
    supervisor = _supervisor(tmp_path, two)
    with pytest.raises(SupervisorError, match=r"block 'db' is external: .* \(set replicas: 1\)"):
        supervisor._prepare()
