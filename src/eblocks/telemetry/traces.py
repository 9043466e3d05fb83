"""Read the spans the ``file`` exporter wrote (``logs/*.spans.jsonl``) and draw a trace as a tree.

Used by ``eblocks trace``: in the local mode every instance appends its spans
to its own file under the mesh's state dir; a trace is the union of the spans
with its id across those files.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Span", "read_spans", "recent_traces", "render_tree", "traces"]


@dataclass(slots=True)
class Span:
    """One finished span, as much of it as a tree needs."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    instance: str
    start: datetime.datetime
    end: datetime.datetime
    status: str
    attributes: dict[str, Any]
    children: list[Span] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Span:
        resource = data.get("resource", {}).get("attributes", {})
        parent = data.get("parent_id")
        return cls(
            trace_id=_hex(data["context"]["trace_id"]),
            span_id=_hex(data["context"]["span_id"]),
            parent_id=_hex(parent) if parent else None,
            name=data["name"],
            kind=str(data.get("kind", "")).removeprefix("SpanKind.").lower(),
            service=str(resource.get("service.name", "?")),
            instance=str(resource.get("service.instance.id", "?")),
            start=_time(data["start_time"]),
            end=_time(data["end_time"]),
            status=str(data.get("status", {}).get("status_code", "UNSET")),
            attributes=dict(data.get("attributes") or {}),
        )


def _hex(value: str) -> str:
    return value.removeprefix("0x").lower()


def _time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_spans(folder: Path, tail: int | None = None) -> Iterator[Span]:
    """The spans in ``folder/*.spans.jsonl`` (only the last ``tail`` bytes of each file if set).

    A torn line (the file's last, being written; the first of a tail) is skipped.
    """
    for path in sorted(folder.glob("*.spans.jsonl")):
        with path.open("rb") as fh:
            if tail is not None:
                fh.seek(max(0, path.stat().st_size - tail))
            data = fh.read()
        for line in data.splitlines():
            try:
                yield Span.from_json(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, ValueError):
                continue


def recent_traces(folder: Path, limit: int = 10, tail: int = 256 * 1024) -> list[dict[str, Any]]:
    """The latest ``limit`` traces in ``folder`` (from each file's tail): root, spans, duration."""
    found = traces(read_spans(folder, tail))
    rows = []
    for trace_id, spans in found.items():
        first = min(spans, key=lambda s: s.start)
        end = max(s.end for s in spans)
        rows.append(
            {
                "trace_id": trace_id,
                "root": first.name,
                "service": first.service,
                "spans": len(spans),
                "services": sorted({s.service for s in spans}),
                "start": first.start.isoformat(),
                "duration_ms": round((end - first.start).total_seconds() * 1000, 3),
                "errors": sum(s.status == "ERROR" for s in spans),
            }
        )
    rows.sort(key=lambda r: str(r["start"]), reverse=True)
    return rows[:limit]


def traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans by trace id."""
    found: dict[str, list[Span]] = {}
    for span in spans:
        found.setdefault(span.trace_id, []).append(span)
    return found


def roots(spans: list[Span]) -> list[Span]:
    """Link children to parents; the spans whose parent is not here are the roots."""
    by_id = {s.span_id: s for s in spans}
    tops = []
    for span in sorted(spans, key=lambda s: s.start):
        parent = by_id.get(span.parent_id) if span.parent_id else None
        if parent is None:
            tops.append(span)
        else:
            parent.children.append(span)
    return tops


def render_tree(spans: list[Span]) -> list[str]:
    """One line per span, children indented under their parent, in start order."""
    lines: list[str] = []

    def walk(span: Span, depth: int) -> None:
        mark = " ERROR" if span.status == "ERROR" else ""
        status = span.attributes.get("http.response.status_code")
        lines.append(
            f"{'  ' * depth}{span.name} [{span.kind}] {span.instance} "
            f"{span.duration_ms:.2f}ms" + (f" {status}" if status else "") + mark
        )
        for child in span.children:
            walk(child, depth + 1)

    for top in roots(spans):
        if top.parent_id:
            lines.append(f"(parent {top.parent_id} was not recorded here)")
        walk(top, 0)
    return lines
