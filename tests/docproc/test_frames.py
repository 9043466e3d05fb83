"""Batch replies of the read path: one JSON head, then the documents' bytes back to back."""

from __future__ import annotations

import orjson
import pytest

from docproc.errors import FrameError
from docproc.frames import pack, unpack


def test_a_frame_gives_back_every_body_exactly() -> None:
    bodies = [b"first\nwith a newline\n", b"", "Grüße \x00 binary".encode(), b"\n\n"]
    docs = [{"id": f"d{i}", "level": "low"} for i in range(len(bodies))]

    head, got = unpack(pack(docs, bodies, timings={"decrypt": 0.5}))

    assert got == bodies
    assert [d["id"] for d in head["docs"]] == ["d0", "d1", "d2", "d3"]
    assert [d["size"] for d in head["docs"]] == [len(b) for b in bodies]
    assert head["timings"] == {"decrypt": 0.5}


def test_an_empty_batch_is_a_frame_too() -> None:
    assert unpack(pack([], [])) == ({"docs": []}, [])


def test_pack_refuses_a_count_that_does_not_match() -> None:
    with pytest.raises(FrameError, match="2 documents but 1 bodies"):
        pack([{"id": "a"}, {"id": "b"}], [b"x"])


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (b'{"docs": []}', "no newline"),
        (b"{not json\n", "not JSON"),
        (b'["docs"]\n', "no 'docs' list"),
        (b'{"docs": [{"id": "a"}]}\nabc', "document 0 has no byte count"),
        (b'{"docs": [{"size": -1}]}\n', "document 0 has no byte count"),
        (b'{"docs": [{"size": 2}, {"size": 5}]}\nabcd', "document 1 needs 5 bytes; 2 are left"),
        (b'{"docs": [{"size": 1}]}\nabc', "2 bytes after the last document"),
    ],
)
def test_unpack_says_what_does_not_add_up(frame: bytes, says: str) -> None:
    with pytest.raises(FrameError, match=says):
        unpack(frame)


def test_the_head_is_one_line_whatever_the_ids_hold() -> None:
    docs = [{"id": "line\nbreak", "level": "high"}]
    frame = pack(docs, [b"body"])
    assert frame.count(b"\n") == 1  # orjson escapes the newline in the id
    head, bodies = unpack(frame)
    assert head["docs"][0]["id"] == "line\nbreak"
    assert bodies == [b"body"]
    assert orjson.loads(frame.split(b"\n", 1)[0])["docs"][0]["size"] == 4
