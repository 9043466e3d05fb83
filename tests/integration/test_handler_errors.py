"""A handler that raises: the caller learns where, the block's log keeps the traceback."""

from __future__ import annotations

import pytest

from .helpers import Sandbox

pytestmark = pytest.mark.integration

STAGES = '''\
"""Three stages; the middle one always fails, deep inside a helper."""

from eblocks import Message


def first(msg: Message) -> bytes:
    return msg.body.upper()


def _parse_ledger_entry(text: str) -> None:
    raise ValueError(f"cannot digest {text}")


async def explode(msg: Message) -> bytes:
    _parse_ledger_entry(msg.text())
    return msg.body


def last(msg: Message) -> bytes:
    return msg.body
'''

SPEC = """\
apiVersion: eblocks/v1
mesh: failing
blocks:
  first:
    handler: stages:first
  explode:
    handler: stages:explode
  last:
    handler: stages:last
patterns:
  ingest:
    pipeline: [first, explode, last]
"""


def test_handler_error_names_the_stage_and_the_log_has_the_traceback(sandbox: Sandbox) -> None:
    sandbox.write("stages.py", STAGES)
    up = sandbox.up(sandbox.write("mesh.yaml", SPEC))
    assert up.returncode == 0, str(up)

    call = sandbox.cmd("call", "ingest", "--data", "hello")

    assert call.returncode == 1, str(call)
    assert call.stdout == "", str(call)
    message = " ".join(call.stderr.split())
    assert "explode" in message, str(call)
    assert "stage 1" in message, str(call)
    assert "ValueError: cannot digest HELLO" in message, str(call)  # what failed, in one line
    for private in ("Traceback", "_parse_ledger_entry", "stages.py"):
        assert private not in call.output, str(call)  # the reply never carries the traceback

    logs = sandbox.cmd("logs", "explode")

    assert logs.returncode == 0, str(logs)
    assert "Traceback (most recent call last)" in logs.stdout, str(logs)
    assert "_parse_ledger_entry" in logs.stdout, str(logs)
    assert "ValueError: cannot digest HELLO" in logs.stdout, str(logs)
    assert all(line.startswith("explode-0 | ") for line in logs.stdout.splitlines()), str(logs)
    for other in ("first", "last"):
        whole = sandbox.cmd("logs", other, "--tail", "0")
        assert whole.returncode == 0, str(whole)
        assert "Traceback" not in whole.stdout, str(whole)
        assert "Warning" not in whole.stdout, str(whole)  # warnings are errors in this project

    ok = sandbox.cmd("call", "first", "--data", "still up")  # the mesh keeps serving
    assert ok.returncode == 0, str(ok)
    assert ok.stdout == "STILL UP", str(ok)
