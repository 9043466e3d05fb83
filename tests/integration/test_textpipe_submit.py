"""`eblocks submit` through the three-stage textpipe: correctness, and a crash mid-run."""

from __future__ import annotations

import json
import signal
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest

from eblocks.batch import idempotency_key

from .helpers import Document, Run, Sandbox, alive, make_documents, parse_table, wait_for

pytestmark = pytest.mark.integration

SLOW_HANDLERS = '''\
"""textpipe with a slow middle stage: one thread, 10 ms a document."""

import time
from typing import Any

from eblocks import Message
from handlers import _STOP, _WORD


def tokenize(msg: Message) -> dict[str, Any]:
    time.sleep(0.01)
    return {"tokens": [w for w in _WORD.findall(msg.text()) if w not in _STOP]}
'''

SLOW_SPEC = """\
apiVersion: eblocks/v1
mesh: slowpipe
defaults:
  timeout: 30s
  retries: {attempts: 3, backoff: 50ms}
blocks:
  clean:
    handler: handlers:clean
  tokenize:
    handler: slowpipe:tokenize
    threads: 1
  count:
    handler: handlers:count
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
"""


def _write_documents(folder: Path, docs: Sequence[Document]) -> None:
    folder.mkdir(parents=True)
    for doc in docs:
        (folder / doc.name).write_bytes(doc.body)


def _summary(run_output: str) -> dict[str, str]:
    return {row[0]: row[1] for row in parse_table(run_output) if len(row) == 2}


def _check_results(
    docs: Sequence[Document], replies: Path, effects: Path, run: str, killed: int | None = None
) -> None:
    """Each reply is right, and the effect folder holds exactly one right file per doc.

    A process killed between writing its temporary file and renaming it leaves
    ``.<key>.<pid>.tmp`` behind; only the ``killed`` pid may have left one.
    """
    assert sorted(p.name for p in replies.iterdir()) == sorted(d.name for d in docs), str(run)
    for doc in docs:
        reply = json.loads((replies / doc.name).read_bytes())
        assert reply == doc.expected, f"{doc.name}: {doc.body[:200]!r}"
    files = sorted(p.name for p in effects.iterdir() if not p.name.startswith("."))
    hidden = [p.name for p in effects.iterdir() if p.name.startswith(".")]
    assert all(killed and name.endswith(f".{killed}.tmp") for name in hidden), hidden
    expected = sorted(f"{idempotency_key(d.name, d.body)}.json" for d in docs)
    assert len(files) == len(docs), f"{len(files)} files for {len(docs)} documents"
    assert files == expected
    for doc in docs:
        effect = json.loads((effects / f"{idempotency_key(doc.name, doc.body)}.json").read_bytes())
        assert effect == doc.expected, doc.name


def _assert_all_ok(run: Run | str, count: int) -> None:
    text = run.stdout if isinstance(run, Run) else run
    summary = _summary(text)
    assert summary.get("documents ok") == str(count), str(run)
    assert summary.get("documents failed") == "0", str(run)


def test_submit_500_documents_through_the_pipeline(sandbox: Sandbox) -> None:
    spec = sandbox.copy_textpipe()
    effects = sandbox.root / "effects"
    up = sandbox.up(spec, env={"TEXTPIPE_OUT": str(effects)})
    assert up.returncode == 0, str(up)
    docs = make_documents(500, seed=20240501)
    assert len({d.expected["words"] for d in docs}) > 20  # the documents really differ
    _write_documents(sandbox.work / "docs", docs)

    run = sandbox.cmd("submit", "ingest", "docs", "--concurrency", "16", "--out", "replies")

    assert run.returncode == 0, str(run)
    _assert_all_ok(run, 500)
    _check_results(docs, sandbox.work / "replies", effects, str(run))


@pytest.mark.parametrize("block", ["tokenize", "count"], ids=["slow-stage", "effect-stage"])
def test_kill_9_of_a_stage_during_submit_loses_and_duplicates_nothing(
    sandbox: Sandbox, block: str
) -> None:
    folder = sandbox.work / "slowpipe"
    spec = sandbox.copy_textpipe("slowpipe")
    spec.write_text(SLOW_SPEC)
    (folder / "slowpipe.py").write_text(SLOW_HANDLERS)
    effects = sandbox.root / "effects"
    up = sandbox.up(spec, env={"TEXTPIPE_OUT": str(effects)})
    assert up.returncode == 0, str(up)
    (row,) = [r for r in sandbox.instances("slowpipe") if r["block"] == block]
    victim = psutil.Process(row["pid"])
    assert "eblocks.runtime.instance" in victim.cmdline()
    docs = make_documents(400, seed=7)
    _write_documents(sandbox.work / "docs", docs)

    submit = sandbox.start("submit", "ingest", "docs", "--concurrency", "16", "--out", "replies")
    done_before = wait_for(
        lambda: len(list(effects.glob("*.json"))) >= 40 or submit.poll() is not None,
        timeout=60,
        what="the first 40 documents",
    )
    assert done_before
    assert submit.poll() is None, "submit ended before the kill"
    victim.send_signal(signal.SIGKILL)  # psutil checks the pid is still that process
    killed_at = len(list(effects.glob("*.json")))
    psutil.wait_procs([victim], timeout=10)
    assert not alive(victim)
    code = submit.wait(timeout=150)

    out, err = sandbox.output_of(submit)
    report = f"exit {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert killed_at < len(docs), "the kill came after the run (make the run longer)"
    assert code == 0, report
    _assert_all_ok(out, len(docs))
    _check_results(docs, sandbox.work / "replies", effects, report, killed=victim.pid)
    restarted = wait_for(
        lambda: next(
            (
                r
                for r in sandbox.instances("slowpipe")
                if r["instance"] == row["instance"] and r["ready"]
            ),
            None,
        ),
        timeout=30,
        what=f"{row['instance']} ready again",
    )
    assert restarted["restarts"] >= 1, restarted
    assert restarted["pid"] != victim.pid, restarted
