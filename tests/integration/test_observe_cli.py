"""`eblocks stat | top | tap` and the access log against a real mesh under a known load."""

from __future__ import annotations

import re
import signal
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
    for one in stats:  # a young instance's minute spans its uptime: rps is not requests / 60
        if one["uptime_s"] < 50 and one["inbound"]["by_route"]:
            minute = one["inbound"]["by_route"][0]["60s"]
            wanted = minute["requests"] / max(one["uptime_s"], 1.0)
            assert minute["rps"] == pytest.approx(wanted, rel=0.01), one["instance"]
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
    assert "telemetry.metrics" not in table.stderr + top.stderr

    # tap: a pattern named as the block, a route no request can have
    pattern = sandbox.cmd("tap", "ingest", "--seconds", "30")
    assert pattern.returncode == 1
    assert "('ingest' is a pattern: tap one of its blocks with --route ingest)" in pattern.stderr
    nosuch = sandbox.cmd("tap", "clean", "--route", "nosuch", "--seconds", "0.5")
    assert nosuch.returncode == 0, str(nosuch)
    warned = [line for line in nosuch.stderr.splitlines() if "route 'nosuch'" in line]
    assert len(warned) == 1, nosuch.stderr
    assert "0 request(s)" in nosuch.stderr
    for query in ("seconds=nan", "seconds=inf", "seconds=-1", "limit=0"):
        status, body = sandbox.admin("observe", clean, f"/v1/tap?{query}")
        assert status == 400, (query, body)
        assert body.startswith(f"/v1/tap: {query.split('=')[0]} ".encode())
    assert _tap_subscribers(sandbox, clean) == 0

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


def test_a_mesh_that_counts_no_requests_says_so(sandbox: Sandbox) -> None:
    spec = sandbox.copy_textpipe()
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text + "telemetry: {metrics: false}\n", encoding="utf-8")
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    call = sandbox.cmd("call", "ingest", "--data", "the quick brown fox")
    assert call.returncode == 0, str(call)
    off = "mesh 'textpipe' runs with telemetry.metrics: false: instances count no requests"
    for args in (("stat",), ("stat", "--json"), ("top", "--iterations", "1", "--interval", "0.2")):
        run = sandbox.cmd(*args)
        assert run.returncode == 0, str(run)
        assert [line for line in run.stderr.splitlines() if off in line], str(run)
        assert off not in run.stdout
    tap = sandbox.cmd("tap", "clean", "--seconds", "30")
    assert tap.returncode == 1, str(tap)
    assert off in tap.stderr
    assert tap.elapsed < 10  # at once, not after --seconds
    assert "request(s)" not in tap.output

    # the dashboard of the stopped mesh: a warning, and the page all the same
    down = sandbox.cmd("down", "--mesh", "textpipe", "--timeout", "20", timeout=60)
    assert down.returncode == 0, str(down)
    board = sandbox.start("dashboard", "--mesh", "textpipe")
    wait_for(
        lambda: "dashboard on http://" in sandbox.output_of(board)[0],
        timeout=30,
        what="the dashboard to print its address",
    )
    assert board.poll() is None  # still serving
    _, err = sandbox.output_of(board)
    assert "mesh 'textpipe' has no running instance" in err
    board.send_signal(signal.SIGINT)
    assert board.wait(timeout=20) == 0
