"""Trace and span ids drawn as hex from the OS in bulk (`eblocks.telemetry.ids`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from eblocks.telemetry import ids

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def test_ids_are_lower_case_hex_of_the_w3c_lengths_and_all_different() -> None:
    traces = [ids.trace_hex() for _ in range(2000)]  # several refills of the buffer
    spans = [ids.span_hex() for _ in range(2000)]
    assert all(HEX32.fullmatch(t) for t in traces)
    assert all(HEX16.fullmatch(s) for s in spans)
    assert len(set(traces)) == len(traces)
    assert len(set(spans)) == len(spans)


def test_an_all_zero_id_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([bytes(4096), b"\x01" * 4096])  # the OS gives zeros first, then not
    monkeypatch.setattr(os, "urandom", lambda n: next(draws)[:n])
    monkeypatch.setattr(ids, "_buffer", "")
    monkeypatch.setattr(ids, "_at", 0)
    span = ids.span_hex()
    assert span == "01" * 8
    trace = ids.trace_hex()
    assert trace == "01" * 16


_FORK = """
import os
from eblocks.telemetry import ids
ids.span_hex()  # the parent has a buffer with ids left in it
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, ids.span_hex().encode())
    os._exit(0)
os.close(write)
child = os.read(read, 16).decode()
os.waitpid(pid, 0)
print(child, ids.span_hex())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    # in a fresh interpreter: this one may have threads, and forking them is not safe
    done = subprocess.run(
        [sys.executable, "-c", _FORK], capture_output=True, text=True, timeout=30, check=True
    )
    child, parent = done.stdout.split()
    assert HEX16.fullmatch(child)
    assert child != parent  # the parent's next id: what the child would have repeated
