"""Fixtures of the integration tests: one sandbox per test (or per module), always cleaned up."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Sandbox


@contextlib.contextmanager
def new_sandbox() -> Iterator[Sandbox]:
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


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """One sandbox for the test (see `new_sandbox`)."""
    with new_sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    """One sandbox shared by a module's tests: for a mesh that is expensive to start.

    Only for tests that leave the mesh as they found it (each test waits for the
    state it needs first); cleaned up as `sandbox` is, after the module's last test.
    """
    with new_sandbox() as box:
        yield box
