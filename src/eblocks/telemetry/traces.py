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

__all__ = ["Span", "read_spans", "render_tree", "traces"]


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


def read_spans(folder: Path) -> Iterator[Span]:
    """Every span in ``folder/*.spans.jsonl`` (a torn last line is skipped)."""
    for path in sorted(folder.glob("*.spans.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                yield Span.from_json(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, ValueError):
                continue


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
