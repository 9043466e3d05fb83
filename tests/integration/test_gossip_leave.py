"""A client under steady load sees no failed request while an instance leaves gracefully.

The mesh runs in gossip mode with retries *off* (one attempt), so a request
routed to an instance that has stopped would fail the run. A tokenize instance
gets SIGTERM in the middle of an `eblocks submit`: it gossips LEFT, the callers
drop it from their views, it keeps serving what it has for `leave_drain`, then
drains and exits (and the supervisor starts it again, which joins mid-load).
"""

from __future__ import annotations

import signal

import psutil
import pytest

from .helpers import Sandbox, make_documents, parse_table, wait_for

pytestmark = pytest.mark.integration

HANDLERS = '''\
"""textpipe with a slower middle stage: 5 ms a document."""

import time
from typing import Any

from eblocks import Message
from handlers import _STOP, _WORD


def tokenize(msg: Message) -> dict[str, Any]:
    time.sleep(0.005)
    return {"tokens": [w for w in _WORD.findall(msg.text()) if w not in _STOP]}
'''

SPEC = """\
apiVersion: eblocks/v1
mesh: leaving
defaults:
  timeout: 30s
  drain: 5s
  retries: {attempts: 1}
discovery:
  mode: gossip
  leave_drain: 1s
blocks:
  clean: {handler: handlers:clean, replicas: 2}
  tokenize: {handler: leaving:tokenize, replicas: 3}
  count: {handler: handlers:count, replicas: 2}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
"""


def test_no_request_fails_while_an_instance_leaves_gracefully(sandbox: Sandbox) -> None:
    folder = sandbox.work / "leaving"
    spec = sandbox.copy_textpipe("leaving")
    spec.write_text(SPEC)
    (folder / "leaving.py").write_text(HANDLERS)
    effects = sandbox.root / "effects"
    up = sandbox.up(spec, env={"TEXTPIPE_OUT": str(effects)})
    assert up.returncode == 0, str(up)
    docs = make_documents(600, seed=11)
    (sandbox.work / "docs").mkdir()
    for doc in docs:
        (sandbox.work / "docs" / doc.name).write_bytes(doc.body)
    (row,) = [r for r in sandbox.instances("leaving") if r["instance"] == "tokenize-1"]
    victim = psutil.Process(row["pid"])
    assert "eblocks.runtime.instance" in victim.cmdline()

    submit = sandbox.start("submit", "ingest", "docs", "--concurrency", "12")
    wait_for(
        lambda: len(list(effects.glob("*.json"))) >= 60 or submit.poll() is not None,
        timeout=60,
        what="the first 60 documents",
    )
    assert submit.poll() is None, "submit ended before the leave"
    victim.send_signal(signal.SIGTERM)
    left_at = len(list(effects.glob("*.json")))
    psutil.wait_procs([victim], timeout=30)
    code = submit.wait(timeout=240)

    out, err = sandbox.output_of(submit)
    report = f"exit {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert left_at < len(docs), "the leave came after the run (make the run longer)"
    assert not victim.is_running(), report
    summary = {r[0]: r[1] for r in parse_table(out) if len(r) == 2}
    assert summary.get("documents failed") == "0", report
    assert summary.get("documents ok") == str(len(docs)), report
    assert code == 0, report
