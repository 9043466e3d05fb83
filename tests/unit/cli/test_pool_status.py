"""The patterns table of `eblocks status`, from a state dir and the managers' /v1/pools."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from rich.console import Console

from eblocks import Block, MeshClient
from eblocks.cli.pool_status import fetch_pools, pattern_table
from eblocks.runtime.state import StateDir, write_json
from eblocks.security import Auth, LocalIssuer
from eblocks.spec import load_spec
from eblocks.testing import StaticResolver
from eblocks.workload import relay

SPEC = """\
apiVersion: eblocks/v1
mesh: view
blocks:
  clean: {handler: "h:clean"}
  boss: {}
  w: {handler: "h:w", replicas: 2}
  fixed: {handler: "h:w", replicas: 2}
  chunks: {handler: "h:chunks"}
  merge: {handler: "h:merge"}
patterns:
  pool:
    manager-worker: {manager: boss, worker: w, queue: {max: 32}, workers: {min: 1, max: 4}}
  plain:
    manager-worker: {manager: boss, worker: fixed}
  lines:
    divide-conquer: {divide: chunks, worker: pool, combine: merge}
  ingest:
    pipeline: [clean, pool]
"""


def _render(state: StateDir, running: bool) -> list[str]:
    table = pattern_table(state, running)
    assert table is not None
    out = io.StringIO()
    Console(file=out, width=200, no_color=True).print(table)
    return [" ".join(line.replace("│", " ").split()) for line in out.getvalue().splitlines()]


def _state(tmp_path: Path) -> StateDir:
    state = StateDir(tmp_path / "view")
    state.create()
    state.spec.write_text(SPEC)
    return state


async def test_every_pattern_with_its_roles_pool_and_live_queue(tmp_path: Path) -> None:
    state = _state(tmp_path)
    write_json(state.pools, {"pools": {"w": {"min": 1, "max": 4, "target": 3, "ready": 2}}})
    spec = load_spec(state.spec)
    issuer = LocalIssuer(spec, state.path)  # mTLS strict: the admin port is TLS
    issuer.issue_client()  # what `eblocks status` shows, as the supervisor issues it
    issuer.issue_block("boss-0", "boss")
    auth = Auth.for_holder(spec, state.path, "boss-0", block="boss")
    client = MeshClient(spec, StaticResolver({"w": ["127.0.0.1:1", "127.0.0.1:2"]}), auth=auth)
    boss = Block.in_mesh("boss", relay, app=None, client=client, instance="boss-0", auth=auth)
    await boss.start("127.0.0.1", 0)
    try:
        rows = [
            {"block": "w", "instance": f"w-{i}", "ready": True, "host": "127.0.0.1", "port": 1}
            for i in range(2)
        ]
        rows.append(
            {
                "block": "boss",
                "instance": "boss-0",
                "ready": True,
                "host": "127.0.0.1",
                "port": boss.port,
                "admin_port": boss.admin_port,
            }
        )
        write_json(state.state, {"mesh": "view", "instances": rows})
        lines = await asyncio.to_thread(_render, state, True)  # status is a blocking command
    finally:
        await boss.stop()
    assert "pool manager-worker manager: boss w 2/3 [1-4] 0 0/32 -" in lines
    assert "plain manager-worker manager: boss fixed 0 0 0/64 -" in lines
    assert "lines divide-conquer divider: chunks, combiner: merge pool - - - -" in lines
    assert "ingest pipeline filter: clean -> pool - - - - -" in lines


def test_a_stopped_mesh_shows_nothing_ready(tmp_path: Path) -> None:
    state = _state(tmp_path)
    lines = _render(state, running=False)
    assert "pool manager-worker manager: boss w 0 - -/32 -" in lines


def test_no_spec_no_table(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "none")
    state.create()
    assert pattern_table(state, running=True) is None


def test_an_instance_that_does_not_answer_is_none() -> None:
    assert fetch_pools("http://127.0.0.1:1/v1/pools", None, timeout=0.5) is None
