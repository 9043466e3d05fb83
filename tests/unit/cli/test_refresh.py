"""`refresh`: the live views (`top`, `members --watch`) into a file or a pipe."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from eblocks.cli import common


class _File(io.StringIO):
    """What a reader of the pipe has seen: the text up to the last flush."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = ""

    def flush(self) -> None:
        self.seen = self.getvalue()


def test_into_a_pipe_each_frame_is_out_before_the_next_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _File()
    monkeypatch.setattr(common, "console", Console(file=out, force_terminal=False, width=80))
    seen_when_made: list[str] = []

    def frame() -> str:
        seen_when_made.append(out.seen)
        return f"frame {len(seen_when_made)}"

    common.refresh(frame, interval=0.01, iterations=3)
    assert seen_when_made == ["", "frame 1\n", "frame 1\nframe 2\n"]
    assert out.seen == "frame 1\nframe 2\nframe 3\n"


def test_ctrl_c_ends_it_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _File()
    monkeypatch.setattr(common, "console", Console(file=out, force_terminal=False, width=80))
    made = 0

    def frame() -> str:
        nonlocal made
        made += 1
        if made == 2:
            raise KeyboardInterrupt
        return "members"

    common.refresh(frame, interval=0.01)  # iterations 0: until Ctrl-C
    assert out.seen == "members\n"
