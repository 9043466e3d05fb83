"""A real mesh spread over three hosts (network namespaces): discovery and calls cross hosts.

Each host runs `eblocks up` (its own supervisor) with one instance of every
textpipe stage, gossip mode, one shared key file; hosts 1 and 2 have host 0's
first member as their only static seed. The test then calls the pipeline from
host 2 while host 2's own tokenize instance is frozen (the call must cross to
another host), partitions host 2 and heals it. `eblocks down` on every host,
then the namespaces go. Every wait is bounded; no assertion is about speed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from .network import Network

pytestmark = pytest.mark.netns

MESH = "spread"
BOUND = 90.0
TEXTPIPE = Path(__file__).resolve().parents[2] / "examples" / "textpipe"
SPEC = """\
apiVersion: eblocks/v1
mesh: spread
defaults:
  host: {host}
  timeout: 10s
  ready_timeout: 120s
  retries: {{attempts: 3, backoff: 50ms}}
discovery:
  mode: gossip
  key_file: ../gossip.key
  seeds: [{seeds}]
  # a healed partition is learnt at the next push-pull: every 5 s here, not 30 s
  tunables: {{sync_interval: 5s}}
blocks:
  clean: {{handler: handlers:clean}}
  tokenize: {{handler: handlers:tokenize}}
  count: {{handler: handlers:count}}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
"""


class Host:
    """One host: a folder with the spec, a state dir, and `eblocks` run in its namespace."""

    def __init__(self, root: Path, prefix: list[str]) -> None:
        self.root, self.prefix = root, prefix
        self.work, self.state = root / "work", root / "state"
        self.work.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EBLOCKS_")}
        self.env = {**env, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}

    def cmd(self, *args: str, timeout: float = 150.0) -> subprocess.CompletedProcess[str]:
        command = [*self.prefix, sys.executable, "-m", "eblocks", *args]
        return subprocess.run(
            [*command, "--state-dir", str(self.state)], cwd=self.work, env=self.env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def instances(self) -> list[dict[str, Any]]:
        try:
            rows: list[dict[str, Any]] = orjson.loads(
                (self.state / MESH / "state.json").read_bytes()
            )["instances"]
        except (OSError, orjson.JSONDecodeError, KeyError):
            return []
        return rows

    def close(self) -> list[str]:
        """`eblocks down`, then kill (and report) whatever of ours still runs."""
        if (self.state / MESH / "supervisor.json").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cmd("down", "--mesh", MESH, "--timeout", "20", timeout=60)
        left = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if str(self.root) in " ".join(proc.info["cmdline"] or ()):
                    left.append(f"pid {proc.pid}: {' '.join(proc.info['cmdline'])}")
                    proc.kill()
        return left


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def hosts(network: Network, tmp_path: Path) -> Iterator[list[Host]]:
    boxes = [Host(tmp_path / f"h{i}", network.prefix(i)) for i in range(3)]
    try:
        yield boxes
    finally:
        with ThreadPoolExecutor(len(boxes)) as pool:  # the hosts go down side by side
            leftovers = [line for lines in pool.map(Host.close, boxes) for line in lines]
    assert not leftovers, leftovers


def _mesh_root(tmp_path: Path) -> Path:
    """One mesh root for every host (brought in with `ca init --cert/--key`), so the
    hosts' SVIDs chain to the same CA and calls across hosts pass strict mTLS."""
    spec = tmp_path / "root-spec.yaml"
    spec.write_text(SPEC.format(host="127.0.0.1", seeds=""))
    state = tmp_path / "root-state"
    run = subprocess.run(
        [sys.executable, "-m", "eblocks", "ca", "init", str(spec), "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run
    return state / MESH / "ca"


def _up(box: Host, host: str, seeds: str, key: Path, root: Path) -> None:
    folder = box.work / "textpipe"
    folder.mkdir()
    shutil.copyfile(TEXTPIPE / "handlers.py", folder / "handlers.py")
    (folder / "mesh.yaml").write_text(SPEC.format(host=host, seeds=seeds))
    (box.work / "gossip.key").write_bytes(key.read_bytes())
    spec = str(folder / "mesh.yaml")
    adopt = box.cmd(
        "ca", "init", spec, "--cert", str(root / "ca.pem"), "--key", str(root / "ca.key")
    )
    assert adopt.returncode == 0, adopt
    run = box.cmd("up", spec, "--detach")
    assert run.returncode == 0, run


def _members(box: Host) -> dict[str, dict[str, Any]]:
    run = box.cmd("members", "--json", "--mesh", MESH, timeout=60)
    if run.returncode != 0:
        return {}
    return {m["instance"]: m for m in orjson.loads(run.stdout)["members"]}


def _call(box: Host) -> subprocess.CompletedProcess[str]:
    return box.cmd("call", "ingest", "--data", "the fox and the fox", "--mesh", MESH)


def _statuses(box: Host) -> dict[str, str]:
    """Status by gossip id: ``<instance>@<host>``, unique across the hosts."""
    return {i: m["status"] for i, m in _members(box).items()}


def _gone(view: dict[str, str], name: str) -> bool:
    """DEAD, or already forgotten (reaped)."""
    return view.get(name, "dead") == "dead"


def test_calls_cross_hosts_and_a_partition_heals(
    network: Network, hosts: list[Host], tmp_path: Path
) -> None:
    key = tmp_path / "gossip.key"
    key.write_bytes(secrets.token_hex(32).encode())
    root = _mesh_root(tmp_path)
    _up(hosts[0], network.addresses[0], "", key, root)
    seed = next(iter(orjson.loads(
        (hosts[0].state / MESH / "gossip.json").read_bytes())["members"]))  # fmt: skip
    seeds = f'"{network.addresses[0]}:{seed["gossip_port"]}"'
    for i in (1, 2):
        _up(hosts[i], network.addresses[i], seeds, key, root)

    def all_alive(box: Host) -> bool:
        view = _statuses(box)
        return len(view) == 9 and set(view.values()) == {"alive"}

    for box in hosts:
        try:
            wait_for(partial(all_alive, box), timeout=BOUND, what="nine members alive")
        except AssertionError as exc:
            views = {b.root.name: _statuses(b) for b in hosts}
            raise AssertionError(f"{exc}: {views}") from None
    hosts_seen = {name.split("@")[1] for name in _statuses(hosts[2])}
    assert hosts_seen == set(network.addresses)

    # host 2's own tokenize is frozen: once its view drops it, calls go to another host
    (row,) = [r for r in hosts[2].instances() if r["block"] == "tokenize"]
    frozen = f"{row['instance']}@{network.addresses[2]}"
    os.kill(row["pid"], signal.SIGSTOP)
    try:
        try:
            wait_for(
                lambda: len(view := _statuses(hosts[2])) >= 8 and _gone(view, frozen),
                timeout=BOUND, what="host 2's tokenize dead in host 2's view",
            )  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {frozen} {_statuses(hosts[2])}") from None
        for _ in range(3):
            run = _call(hosts[2])
            assert run.returncode == 0, run
            assert orjson.loads(run.stdout)["top"] == [["fox", 2]], run
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(row["pid"], signal.SIGCONT)
    wait_for(lambda: all_alive(hosts[2]), timeout=BOUND, what="tokenize back after SIGCONT")

    network.cut(2)
    island = {f"{r['instance']}@{network.addresses[2]}" for r in hosts[2].instances()}

    def island_dead() -> bool:
        view = _statuses(hosts[0])
        return len(view) >= 6 and all(_gone(view, name) for name in island)

    wait_for(island_dead, timeout=BOUND, what="host 2's members dead on host 0")
    run = _call(hosts[0])
    assert run.returncode == 0, run
    network.heal(2)
    for box in hosts:
        wait_for(partial(all_alive, box), timeout=BOUND, what="views after the heal")
    run = _call(hosts[2])
    assert run.returncode == 0, run
