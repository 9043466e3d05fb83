"""The batch read path's reply: many documents' bytes in one body, without base64.

A frame is one line of JSON, a newline, then the documents' bytes back to back::

    {"docs": [{"id": ..., "size": n0}, ...], "timings": {...}}\n<n0 bytes><n1 bytes>...

The JSON line says how many bytes each document has (``size``); orjson never
writes a raw newline, so the first one ends the line. Relays pass the body on
untouched; only the decrypt worker packs and the client unpacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from docproc.errors import FrameError

__all__ = ["CONTENT_TYPE", "READ_BATCH", "pack", "unpack"]

CONTENT_TYPE: Final = "application/vnd.docproc.batch"

READ_BATCH: Final = 32
"""Documents per read-back request, by default (the demo and `eblocks bench docproc`):
one fetch query and one decrypt task each, so the mesh's per-request work is shared
by 32 documents while two workers still get tasks of about 70 ms each."""


def pack(docs: Sequence[dict[str, Any]], bodies: Sequence[bytes], **extra: Any) -> bytes:
    """One frame: ``docs`` (each given its ``size``), ``extra`` fields, then ``bodies``."""
    if len(docs) != len(bodies):
        raise FrameError(f"frame: {len(docs)} documents but {len(bodies)} bodies")
    head = {"docs": [{**doc, "size": len(body)} for doc, body in zip(docs, bodies, strict=True)]}
    return orjson.dumps({**head, **extra}) + b"\n" + b"".join(bodies)


def unpack(frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The JSON head and each document's bytes; `FrameError` says what does not add up."""
    end = frame.find(b"\n")
    if end < 0:
        raise FrameError("frame: no newline after the JSON head")
    try:
        head = orjson.loads(frame[:end])
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"frame: the head is not JSON ({exc})") from None
    docs = head.get("docs") if isinstance(head, dict) else None
    if not isinstance(docs, list):
        raise FrameError("frame: the head has no 'docs' list")
    view = memoryview(frame)
    at = end + 1
    bodies = []
    for index, doc in enumerate(docs):
        size = doc.get("size") if isinstance(doc, dict) else None
        if type(size) is not int or size < 0:
            raise FrameError(f"frame: document {index} has no byte count ('size')")
        if at + size > len(frame):
            raise FrameError(
                f"frame: document {index} needs {size} bytes; {len(frame) - at} are left"
            )
        bodies.append(bytes(view[at : at + size]))
        at += size
    if at != len(frame):
        raise FrameError(f"frame: {len(frame) - at} bytes after the last document")
    return head, bodies
