"""`eblocks submit` through the hybrid example: a pool inside a pipeline, and a fan-out."""

from __future__ import annotations

import json
import shutil
import signal

import psutil
import pytest

from eblocks.batch import idempotency_key

from .helpers import REPO, Sandbox, alive, make_documents, parse_table, wait_for

pytestmark = pytest.mark.integration

HYBRID = REPO / "examples" / "hybrid"


def _summary(text: str) -> dict[str, str]:
    return {row[0]: row[1] for row in parse_table(text) if len(row) == 2}


def test_pool_stage_survives_a_worker_kill_and_fan_out_keeps_order(sandbox: Sandbox) -> None:
    folder = sandbox.work / "hybrid"
    shutil.copytree(HYBRID, folder)
    effects = sandbox.root / "effects"
    up = sandbox.up(
        folder / "mesh.yaml", env={"HYBRID_OUT": str(effects), "HYBRID_TOKENIZE_MS": "100"}
    )
    assert up.returncode == 0, str(up)
    workers = [r for r in sandbox.instances("hybrid") if r["block"] == "tokenize"]
    assert len(workers) == 3
    victim = psutil.Process(workers[0]["pid"])
    docs = make_documents(300, seed=11)
    (sandbox.work / "docs").mkdir()
    for doc in docs:
        (sandbox.work / "docs" / doc.name).write_bytes(doc.body)

    submit = sandbox.start("submit", "ingest", "docs", "--concurrency", "16", "--out", "replies")
    wait_for(
        lambda: len(list(effects.glob("*.json"))) >= 30 or submit.poll() is not None,
        timeout=60,
        what="the first 30 documents",
    )
    assert submit.poll() is None, "submit ended before the kill: " + str(sandbox.output_of(submit))
    victim.send_signal(signal.SIGKILL)
    psutil.wait_procs([victim], timeout=10)
    assert not alive(victim)
    code = submit.wait(timeout=150)

    out, err = sandbox.output_of(submit)
    report = f"exit {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert code == 0, report
    assert _summary(out).get("documents ok") == str(len(docs)), report
    for doc in docs:
        assert json.loads((sandbox.work / "replies" / doc.name).read_bytes()) == doc.expected
    files = sorted(p.name for p in effects.glob("*.json"))
    assert files == sorted(f"{idempotency_key(d.name, d.body)}.json" for d in docs)

    lines = sandbox.work / "lines"
    lines.mkdir()
    texts = {f"t{i}.txt": "\n".join(f"{'w ' * (j + i)}end" for j in range(12)) for i in range(5)}
    for name, text in texts.items():
        (lines / name).write_text(text)
    run = sandbox.cmd("submit", "lines", "lines", "--out", "merged")
    assert run.returncode == 0, str(run)
    for name, text in texts.items():
        reply = json.loads((sandbox.work / "merged" / name).read_bytes())
        expected = [len(line.split()) for line in text.splitlines()]
        assert reply == {"lines": 12, "words": expected}
