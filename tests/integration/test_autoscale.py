"""Autoscaling under the local supervisor: a load step grows the pool, idleness shrinks it.

Real processes on loopback: `eblocks up`, `eblocks submit` as the load, a
CPU-bound worker that records every execution. No timing is asserted; every
wait is bounded.
"""

from __future__ import annotations

import collections
import json
import re
from typing import Any

import psutil
import pytest

from eblocks.batch import idempotency_key

from .helpers import Sandbox, alive, parse_table, wait_for

pytestmark = pytest.mark.integration

MESH = """\
apiVersion: eblocks/v1
mesh: scaled
defaults:
  timeout: 60s
  drain: 10s
blocks:
  dispatcher: {}
  crunch: {handler: "handlers:crunch", threads: 1}
patterns:
  pool:
    manager-worker:
      manager: dispatcher
      worker: crunch
      concurrency: 1
      queue: {max: 512}
      workers: {min: 1, max: 3, target_inflight: 1, scale_down_delay: 2s}
"""

HANDLERS = """\
import hashlib
import os
import time


def crunch(msg, ctx):
    \"\"\"CPU-bound: hash for WORK_MS of CPU time; log each run as '<key> <pid>'.\"\"\"
    began = time.process_time()
    digest = msg.body
    while time.process_time() - began < float(os.environ["WORK_MS"]) / 1000:
        digest = hashlib.sha256(digest).digest()
    line = f"{ctx.idempotency_key} {os.getpid()}\\n".encode()
    fd = os.open(os.environ["RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return {"n": len(msg.body), "sha": hashlib.sha256(msg.body).hexdigest()}
"""


def _workers(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.instances("scaled") if r["block"] == "crunch"]


def _pools_json(sandbox: Sandbox) -> dict[str, Any]:
    path = sandbox.mesh_dir("scaled") / "pools.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())["pools"]["crunch"]
    except (FileNotFoundError, ValueError, KeyError):
        return {}
    return data


def _admin_pools(sandbox: Sandbox, row: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sandbox.admin_ok("scaled", row, "/v1/pools"))
    return data


def test_load_grows_the_pool_to_max_and_idleness_shrinks_it_to_min(sandbox: Sandbox) -> None:
    spec = sandbox.write("scaled/mesh.yaml", MESH)
    sandbox.write("scaled/handlers.py", HANDLERS)
    runs = sandbox.root / "runs.log"
    env = {"WORK_MS": "50", "RUNS": str(runs)}
    up = sandbox.up(spec, env=env)
    assert up.returncode == 0, str(up)
    assert len(_workers(sandbox)) == 1  # replicas 1 is within [1, 3]: the pool starts at 1

    docs = sandbox.work / "docs"
    docs.mkdir()
    bodies = {f"d{i:03d}.txt": f"document {i} ".encode() * (i % 7 + 1) for i in range(400)}
    for name, body in bodies.items():
        (docs / name).write_bytes(body)
    submit = sandbox.start("submit", "pool", "docs", "--concurrency", "8", "--out", "replies")

    seen: dict[int, psutil.Process] = {}

    def grown() -> bool:
        rows = _workers(sandbox)
        for row in rows:
            if row["pid"] and row["pid"] not in seen:
                seen[row["pid"]] = psutil.Process(row["pid"])
        return sum(1 for r in rows if r["ready"]) == 3 or submit.poll() is not None

    wait_for(grown, timeout=90, what="the pool to grow to 3 ready workers")
    assert submit.poll() is None, "the load ended before the pool grew: " + str(
        sandbox.output_of(submit)
    )
    assert _pools_json(sandbox)["target"] == 3
    status = sandbox.cmd("status", "--mesh", "scaled")
    assert status.returncode == 0, str(status)
    pattern_rows = [r for r in parse_table(status.stdout) if r and r[0] == "pool"]
    assert pattern_rows, str(status)
    assert pattern_rows[0][1:5] == ["manager-worker", "manager: dispatcher", "crunch", "3/3 [1-3]"]

    code = submit.wait(timeout=240)
    out, err = sandbox.output_of(submit)
    assert code == 0, f"exit {code}\n{out}\n{err}"
    summary = {row[0]: row[1] for row in parse_table(out) if len(row) == 2}
    assert summary.get("documents ok") == str(len(bodies)), out
    assert summary.get("documents failed") == "0", out

    def shrunk() -> bool:
        pool = _pools_json(sandbox)
        return len(_workers(sandbox)) == 1 and pool.get("running") == 1 and pool["target"] == 1

    wait_for(shrunk, timeout=90, what="the pool to shrink back to 1 worker")
    (survivor,) = _workers(sandbox)
    retired = [proc for pid, proc in seen.items() if pid != survivor["pid"]]
    assert len(retired) >= 2
    psutil.wait_procs(retired, timeout=20)
    assert not [p for p in retired if alive(p)], "retired workers still run"

    # every task ran exactly once (drained before retiring: none cut off, none repeated)
    keys = collections.Counter(line.split()[0] for line in runs.read_text().splitlines())
    expected = {idempotency_key(name, body) for name, body in bodies.items()}
    assert set(keys) == expected
    assert max(keys.values()) == 1
    pids = {line.split()[1] for line in runs.read_text().splitlines()}
    assert len(pids) >= 3  # the work really spread over the grown pool
    for name, body in bodies.items():
        reply = json.loads((sandbox.work / "replies" / name).read_bytes())
        assert reply["n"] == len(body)

    (manager,) = [r for r in sandbox.instances("scaled") if r["block"] == "dispatcher"]
    (row,) = _admin_pools(sandbox, manager)["pools"]
    assert row["pattern"] == "pool"
    assert (row["active"], row["queued"], row["workers_ready"]) == (0, 0, 1)
    scaling = row["autoscale"]
    assert scaling["last_scale_up_s"] is not None
    assert scaling["last_scale_up_s"] > 0
    assert scaling["scale_ups"] >= 1
    assert scaling["scale_downs"] >= 1
    log = (sandbox.mesh_dir("scaled") / "logs" / "dispatcher-0.log").read_text()
    assert re.search(r"scale-up of crunch 1 -> [23] workers ready in \d+\.\d\ds", log), log
    assert re.search(r"crunch shrinks [23] -> 1\b", log), log


def test_the_supervisor_honours_only_managers_and_only_within_bounds(sandbox: Sandbox) -> None:
    # A long window: the idle manager keeps whatever size the pool has, so the
    # requests written here are not undone by its own (which then repeat them).
    spec = sandbox.write(
        "scaled/mesh.yaml", MESH.replace("scale_down_delay: 2s", "scale_down_delay: 10m")
    )
    sandbox.write("scaled/handlers.py", HANDLERS)
    env = {"WORK_MS": "1", "RUNS": str(sandbox.root / "runs.log")}
    up = sandbox.up(spec, env=env)
    assert up.returncode == 0, str(up)
    scale = sandbox.mesh_dir("scaled") / "scale"
    wait_for(lambda: (scale / "dispatcher-0.json").exists(), timeout=30, what="the first request")

    def ask(instance: str, n: int) -> None:
        body = json.dumps({"instance": instance, "pools": {"crunch": n}}).encode()
        (scale / f"{instance}.json.tmp").write_bytes(body)
        (scale / f"{instance}.json.tmp").rename(scale / f"{instance}.json")

    ask("crunch-0", 3)  # a worker is no manager of its own pool: ignored
    ask("dispatcher-0", 9)  # a manager: honoured, clamped to max 3
    wait_for(lambda: _pools_json(sandbox).get("ready") == 3, timeout=60, what="3 ready workers")
    pool = _pools_json(sandbox)
    assert (pool["target"], pool["running"]) == (3, 3)
    assert list(pool["requests"]) == ["dispatcher-0"]  # a worker's file is never read

    started = {r["instance"]: psutil.Process(r["pid"]) for r in _workers(sandbox)}
    assert sorted(started) == ["crunch-0", "crunch-1", "crunch-2"]
    ask("dispatcher-0", 0)  # below min: clamped to 1, the newest retire
    wait_for(
        lambda: [r["instance"] for r in _workers(sandbox)] == ["crunch-0"],
        timeout=60,
        what="the pool back at 1 worker",
    )
    psutil.wait_procs([started["crunch-1"], started["crunch-2"]], timeout=20)
    assert not alive(started["crunch-1"])
    assert not alive(started["crunch-2"])
    assert alive(started["crunch-0"])
    assert _pools_json(sandbox)["target"] == 1
