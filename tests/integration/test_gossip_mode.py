"""`discovery.mode: gossip` with real processes: views converge, failures are detected, calls go on.

Eight instances of the textpipe pipeline (clean x2, tokenize x4, count x2) find
each other through gossip; each stage resolves the next through its own view.
Every wait is bounded; no assertion is about speed.

One mesh serves the whole module (starting eight instances is most of the cost).
A test that freezes, kills or stops an instance waits until every view has it
alive again before it ends, and every test first waits for converged views, so
each one starts from the state it would find on a fresh mesh. The key rotation
changes the key file for good and therefore runs last (file order).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from eblocks.discovery.wire import key_id_of

from .helpers import Sandbox, parse_table, wait_for

pytestmark = pytest.mark.integration

MESH = "gossip"
SPEC = """\
apiVersion: eblocks/v1
mesh: gossip
defaults:
  timeout: 10s
  drain: 2s
  retries: {attempts: 3, backoff: 50ms}
discovery:
  mode: gossip
  leave_drain: 1s
blocks:
  clean: {handler: handlers:clean, replicas: 2}
  tokenize: {handler: handlers:tokenize, replicas: 4}
  count: {handler: handlers:count, replicas: 2}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
"""
INSTANCES = {
    "clean-0",
    "clean-1",
    "tokenize-0",
    "tokenize-1",
    "tokenize-2",
    "tokenize-3",
    "count-0",
    "count-1",
}
DETECT_BOUND = 20.0  # generous: detection takes ~2 s with the default tunables


@pytest.fixture(scope="module")
def mesh(module_sandbox: Sandbox) -> Sandbox:
    folder = module_sandbox.copy_textpipe().parent
    spec = folder / "gossip.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    up = module_sandbox.up(spec)
    assert up.returncode == 0, str(up)
    return module_sandbox


@pytest.fixture
def frozen() -> Iterator[list[int]]:
    """Pids a test SIGSTOPs; resumed before the sandbox stops the mesh."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _view(sandbox: Sandbox, row: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """One instance's /v1/members by instance id, or None if it does not answer."""
    try:
        status, answer = sandbox.admin(MESH, row, "/v1/members", timeout=2.0)
    except OSError:
        return None
    if status != 200:
        return None
    body = orjson.loads(answer)
    return {m["instance"]: m for m in body["members"]}


def _views(sandbox: Sandbox, skip: str = "") -> dict[str, dict[str, dict[str, Any]] | None]:
    return {
        row["instance"]: _view(sandbox, row)
        for row in sandbox.instances(MESH)
        if row["instance"] != skip and row["ready"]
    }


def _all_alive(sandbox: Sandbox) -> dict[str, dict[str, dict[str, Any]]] | None:
    views = _views(sandbox)
    if set(views) != INSTANCES:
        return None
    done: dict[str, dict[str, dict[str, Any]]] = {}
    for viewer, view in views.items():
        if view is None or {i for i, m in view.items() if m["status"] == "alive"} != INSTANCES:
            return None
        done[viewer] = view
    return done


def _row(sandbox: Sandbox, instance: str) -> dict[str, Any]:
    (row,) = [r for r in sandbox.instances(MESH) if r["instance"] == instance]
    return row


def _call_ok(sandbox: Sandbox) -> None:
    run = sandbox.cmd("call", "ingest", "--data", "the fox and the fox", timeout=30)
    assert run.returncode == 0, str(run)
    assert orjson.loads(run.stdout)["top"] == [["fox", 2]], str(run)


def test_views_converge_and_members_prints_them(mesh: Sandbox) -> None:
    views = wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="converged views")
    for view in views.values():
        for instance, member in view.items():
            row = _row(mesh, instance)
            assert member["address"] == f"{row['host']}:{row['port']}"
            assert member["gossip"] == f"{row['host']}:{row['gossip_port']}"
            assert member["block"] == instance.rsplit("-", 1)[0]
            assert member["roles"] == ["filter"]

    run = mesh.cmd("members")
    assert run.returncode == 0, str(run)
    rows = parse_table(run.stdout)
    header, body = rows[0], rows[1:]
    assert header == ["block", "instance", "address", "role", "status", "load", "last seen"]
    table = {cells[1]: dict(zip(header, cells, strict=True)) for cells in body}
    assert set(table) == INSTANCES, str(run)
    assert {r["status"] for r in table.values()} == {"alive"}, str(run)
    assert "8/8 alive" in run.stdout, str(run)

    only = mesh.cmd("members", "--block", "tokenize")
    assert only.returncode == 0, str(only)
    assert {cells[1] for cells in parse_table(only.stdout)[1:]} == {
        f"tokenize-{i}" for i in range(4)
    }, str(only)


def test_frozen_member_is_removed_everywhere_then_refutes(mesh: Sandbox, frozen: list[int]) -> None:
    before = wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="converged views")
    victim = _row(mesh, "tokenize-1")
    incarnation = before["clean-0"]["tokenize-1"]["incarnation"]
    frozen.append(victim["pid"])
    os.kill(victim["pid"], signal.SIGSTOP)  # alive to the supervisor, silent to the gossip

    _call_ok(mesh)  # retries cover the window before detection

    def removed() -> bool:
        views = _views(mesh, skip="tokenize-1")
        return len(views) == 7 and all(
            view is not None
            and view.get("tokenize-1", {"status": "gone"})["status"] in {"dead", "gone"}
            for view in views.values()
        )

    wait_for(removed, timeout=DETECT_BOUND, what="tokenize-1 removed from every view")
    for _ in range(3):
        _call_ok(mesh)

    os.kill(victim["pid"], signal.SIGCONT)
    after = wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="tokenize-1 back")
    assert all(view["tokenize-1"]["incarnation"] > incarnation for view in after.values())


def test_killed_member_restarts_with_a_higher_incarnation(mesh: Sandbox) -> None:
    before = wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="converged views")
    victim = _row(mesh, "tokenize-2")
    old = before["clean-0"]["tokenize-2"]
    os.kill(victim["pid"], signal.SIGKILL)

    for _ in range(3):
        _call_ok(mesh)

    def restarted() -> dict[str, Any] | None:
        row = _row(mesh, "tokenize-2")
        return row if row["ready"] and row["pid"] != victim["pid"] else None

    row = wait_for(restarted, timeout=DETECT_BOUND, what="tokenize-2 restarted")

    def back() -> dict[str, dict[str, dict[str, Any]]] | None:
        views = _all_alive(mesh)
        if views is None:
            return None
        fresh = f"{row['host']}:{row['gossip_port']}"
        return views if all(v["tokenize-2"]["gossip"] == fresh for v in views.values()) else None

    views = wait_for(back, timeout=DETECT_BOUND, what="restarted tokenize-2 in every view")
    assert all(v["tokenize-2"]["incarnation"] > old["incarnation"] for v in views.values())
    _call_ok(mesh)


def test_sigterm_announces_left_before_draining(mesh: Sandbox) -> None:
    wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="converged views")
    victim = _row(mesh, "count-1")
    os.kill(victim["pid"], signal.SIGTERM)

    def seen_left() -> bool:
        views = _views(mesh, skip="count-1")
        return any(
            view is not None and view.get("count-1", {}).get("status") == "left"
            for view in views.values()
        )

    wait_for(seen_left, timeout=10.0, what="count-1 announced LEFT", interval=0.02)
    wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="count-1 back after restart")
    _call_ok(mesh)


def test_gossip_key_file_is_private(mesh: Sandbox) -> None:
    key = Path(mesh.mesh_dir(MESH)) / "gossip.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) >= 16


def _counters(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    found = {}
    for row in sandbox.instances(MESH):
        with contextlib.suppress(OSError):
            status, answer = sandbox.admin(MESH, row, "/v1/members", timeout=2.0)
            if status == 200:
                found[row["instance"]] = orjson.loads(answer)["counters"]
    return found


def test_the_key_rotates_in_a_running_mesh_without_a_dropped_packet(mesh: Sandbox) -> None:
    wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="converged views")
    path = Path(mesh.mesh_dir(MESH)) / "gossip.key"
    old, new = path.read_bytes().strip(), b"the-rotated-gossip-key-0123456789"
    # accept the new key everywhere, then sign with it, then drop the old one (kept for the window)
    for keys in ([old, new], [new, old], [new]):
        path.write_bytes(b"\n".join(keys) + b"\n")
        ids = [key_id_of(k) for k in (keys if len(keys) == 2 else [new, old])]

        def adopted(ids: list[int] = ids) -> bool:
            counters = _counters(mesh)
            return len(counters) == len(INSTANCES) and all(
                c["key_ids"] == ids for c in counters.values()
            )

        wait_for(adopted, timeout=DETECT_BOUND, what=f"key ids {ids} everywhere")
    wait_for(lambda: _all_alive(mesh), timeout=DETECT_BOUND, what="views after rotation")
    assert {i: c["dropped_auth"] for i, c in _counters(mesh).items()} == dict.fromkeys(INSTANCES, 0)
    _call_ok(mesh)
