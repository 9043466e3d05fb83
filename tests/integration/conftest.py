"""Fixtures of the integration tests: one sandbox per test, always cleaned up."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh working dir and state dir; afterwards `eblocks down`, then kill leftovers.

    A process still alive after `eblocks down` is killed (by pid, checked to be
    the one this sandbox started) and then reported as an error of the test.
    """
    box = Sandbox(Path(tempfile.mkdtemp(prefix="eblocks-it-")))
    try:
        yield box
    finally:
        leftovers = box.close()
    if leftovers:
        pytest.fail("processes left behind after `eblocks down`:\n" + "\n".join(leftovers))
