"""`eblocks stat | top | tap` and the access log against a real mesh under a known load."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pytest

from .helpers import Sandbox, make_documents, parse_table, wait_for

pytestmark = pytest.mark.integration

DOCS = 40
SPEC = """\
apiVersion: eblocks/v1
mesh: observe
defaults: {timeout: 10s, drain: 2s, access_log: true}
blocks:
  clean: {handler: handlers:clean}
  tokenize: {handler: handlers:tokenize, replicas: 2}
  count: {handler: handlers:count, access_log: false}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
"""


def _tap_subscribers(sandbox: Sandbox, row: dict[str, Any]) -> float:
    text = sandbox.admin_ok("observe", row, "/metrics").decode()
    found = re.search(r"^eblocks_tap_subscribers (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_stat_top_tap_and_access_log(sandbox: Sandbox) -> None:
    folder = sandbox.copy_textpipe().parent
    spec = folder / "observe.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    docs = make_documents(DOCS, seed=11)
    (sandbox.work / "docs").mkdir()
    for doc in docs:
        (sandbox.work / "docs" / doc.name).write_bytes(doc.body)

    # tap: subscribed before the load, ends by itself after --limit requests
    clean = next(r for r in sandbox.instances("observe") if r["block"] == "clean")
    tapping = sandbox.start("tap", "clean", "--limit", "5", "--json", "--seconds", "60")
    wait_for(lambda: _tap_subscribers(sandbox, clean) == 1, timeout=30, what="the tap to subscribe")

    run = sandbox.cmd("submit", "ingest", "docs", "--concurrency", "4")
    assert run.returncode == 0, str(run)
    assert tapping.wait(timeout=30) == 0
    out, _ = sandbox.output_of(tapping)
    tapped = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    assert len(tapped) == 5
    assert {(t["direction"], t["source"], t["destination"]) for t in tapped} == {
        ("inbound", "cli", "clean")
    }
    assert all(t["status"] == 200 and t["route"] == "ingest" for t in tapped)

    # stat --json: the instances' totals agree with the load generator's count
    stat_json = sandbox.cmd("stat", "--json")
    assert stat_json.returncode == 0, str(stat_json)
    stats = orjson.loads(stat_json.stdout)
    assert sorted(s["instance"] for s in stats) == [
        "clean-0",
        "count-0",
        "tokenize-0",
        "tokenize-1",
    ]
    inbound: Counter[str] = Counter()
    last_minute: Counter[str] = Counter()
    for one in stats:
        for edge in one["inbound"]["edges"]:
            inbound[one["block"]] += edge["total"]["requests"]
            last_minute[one["block"]] += edge["60s"]["requests"]
    assert inbound == {"clean": DOCS, "tokenize": DOCS, "count": DOCS}
    assert last_minute == inbound
    one_block = sandbox.cmd("stat", "tokenize", "--json")
    assert one_block.returncode == 0, str(one_block)
    assert sorted(s["instance"] for s in orjson.loads(one_block.stdout)) == [
        "tokenize-0",
        "tokenize-1",
    ]

    # stat: the table, one row per block, every request a success
    table = sandbox.cmd("stat", "--window", "60s")
    assert table.returncode == 0, str(table)
    cells = parse_table(table.stdout)
    rows = {r[0]: r for r in cells if len(r) == 8 and r[0] in ("clean", "tokenize", "count")}
    assert set(rows) == {"clean", "tokenize", "count"}
    assert rows["tokenize"][1] == "2"  # instances
    assert all(r[2] == "100.00%" for r in rows.values())
    edges = {(r[0], r[1]) for r in cells if len(r) == 7}
    assert {("clean", "tokenize"), ("tokenize", "count")} <= edges

    top = sandbox.cmd("top", "--iterations", "2", "--interval", "0.2", "--window", "60s")
    assert top.returncode == 0, str(top)
    assert top.stdout.count("4 instances answered") == 2  # piped: each frame printed, as top -b
    assert "tokenize" in top.stdout

    bad = sandbox.cmd("stat", "nosuch")
    assert bad.returncode == 1
    assert "no running instance of block 'nosuch'" in bad.output

    # access log: on for clean and tokenize, off for count (per block in the spec)
    logs = sandbox.mesh_dir("observe") / "logs"
    wait_for(
        lambda: _lines(logs, "clean-0", "inbound") == DOCS,
        timeout=20,
        what="clean's access log to hold every request",
    )
    wait_for(  # tokenize's writers flush on their own clocks
        lambda: sum(_lines(logs, f"tokenize-{i}", "inbound") for i in range(2)) == DOCS,
        timeout=20,
        what="tokenize's access logs to hold every request",
    )
    assert not (logs / "count-0.access.jsonl").exists()
    lines = [orjson.loads(x) for x in (logs / "clean-0.access.jsonl").read_bytes().splitlines()]
    outbound = [x for x in lines if x["direction"] == "outbound"]
    assert len(outbound) == DOCS
    assert {x["destination"] for x in outbound} == {"tokenize"}
    ids = {x["request_id"] for x in lines}
    assert len(ids) == DOCS  # each document's request id, inbound and outbound alike


def _lines(logs: Any, instance: str, direction: str) -> int:
    path = logs / f"{instance}.access.jsonl"
    if not path.exists():
        return 0
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1].splitlines()  # a line being written is left out
    return sum(orjson.loads(x)["direction"] == direction for x in whole)
