"""What changes between two versions of the policies, for humans (`eblocks diff`/`apply`).

Routes are matched by name, block policies by block name; each changed rule
lists its field paths with ``old -> new`` (defaults included, so a field set
back to its default shows too). Routes are ordered (first match wins), so a new
order of the same routes is a change of its own. `spec_changes` lists what
differs outside ``policies`` — those need a restart, `apply` does not change them;
a block or pattern added or removed is one line (``blocks.store-v4 (added)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from eblocks.spec.models import MeshSpec
from eblocks.spec.policies import Policies

__all__ = ["Change", "FieldChange", "diff_policies", "flatten", "render", "spec_changes"]

Kind = Literal["added", "removed", "changed"]
_MARK = {"added": "+", "removed": "-", "changed": "~"}


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Change:
    """One route or block policy added, removed or changed (with its changed fields)."""

    kind: Kind
    what: Literal["route", "block", "order"]
    name: str
    fields: tuple[FieldChange, ...] = field(default=())


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [{"c": 1}]}}`` -> ``{"a.b[0].c": 1}``; lists of plain values stay whole."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple) and any(isinstance(v, Mapping | list) for v in value):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    if isinstance(value, tuple):
        value = list(value)
    return {prefix: value} if prefix else {}


_MISSING = object()


def _set(leaves: dict[str, Any]) -> dict[str, Any]:
    """The leaves that say something: null and empty are both "unset"."""
    return {path: value for path, value in leaves.items() if not _empty(value)}


def _fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    a, b = _set(flatten(old)), _set(flatten(new))
    paths = sorted(set(a) | set(b))
    return tuple(
        FieldChange(p, a.get(p, _MISSING), b.get(p, _MISSING))
        for p in paths
        if a.get(p, _MISSING) != b.get(p, _MISSING)
    )


def _diff_named(
    what: Literal["route", "block"], old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[Change]:
    changes: list[Change] = []
    for name in old:
        if name not in new:
            changes.append(Change("removed", what, name, _fields(old[name], {})))
    for name in new:
        if name not in old:
            changes.append(Change("added", what, name, _fields({}, new[name])))
        elif old[name] != new[name]:
            changes.append(Change("changed", what, name, _fields(old[name], new[name])))
    return changes


def diff_policies(old: Policies, new: Policies) -> list[Change]:
    """Every change from ``old`` to ``new``: routes first (in order), then block policies."""
    old_routes = {r.name: r.model_dump(mode="json") for r in old.routes}
    new_routes = {r.name: r.model_dump(mode="json") for r in new.routes}
    changes = _diff_named("route", old_routes, new_routes)
    kept_old = [n for n in old_routes if n in new_routes]
    kept_new = [n for n in new_routes if n in old_routes]
    if kept_old != kept_new:
        order = FieldChange("routes", ", ".join(kept_old), ", ".join(kept_new))
        changes.append(Change("changed", "order", "routes", (order,)))
    old_blocks = {k: v.model_dump(mode="json") for k, v in sorted(old.blocks.items())}
    new_blocks = {k: v.model_dump(mode="json") for k, v in sorted(new.blocks.items())}
    return changes + _diff_named("block", old_blocks, new_blocks)


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(unset)"
    return repr(value) if isinstance(value, str) else str(value).replace("None", "null")


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def render(changes: list[Change]) -> list[str]:
    """Readable lines: ``~ route canary`` then ``    destinations[0].weight: 90 -> 80``."""
    lines: list[str] = []
    for change in changes:
        if change.what == "order":
            lines.append("~ route order (first match wins)")
        else:
            lines.append(f"{_MARK[change.kind]} {change.what} {change.name}")
        for f in change.fields:
            if change.kind != "changed" and f.path == "name":
                continue  # the heading names it
            if change.kind == "added":
                lines.append(f"    {f.path}: {_show(f.new)}")
            elif change.kind == "removed":
                lines.append(f"    {f.path}: {_show(f.old)}")
            else:
                lines.append(f"    {f.path}: {_show(f.old)} -> {_show(f.new)}")
    return lines


_BY_NAME = ("blocks", "patterns")
"""Sections compared name by name: a block or pattern added or removed is one line."""


def spec_changes(old: MeshSpec, new: MeshSpec) -> list[str]:
    """What differs outside ``policies`` (it needs a restart), in path order.

    Blocks and patterns are compared by name first: one that only one side has
    is ``blocks.NAME (added)`` or ``patterns.NAME (removed)``; one on both sides
    lists its changed field paths (``blocks.store.replicas``), as does every
    other section.
    """
    a = old.model_dump(mode="json", by_alias=True, exclude={"policies"})
    b = new.model_dump(mode="json", by_alias=True, exclude={"policies"})
    found: list[tuple[str, str]] = []  # (path, line): sorted by path
    for section in _BY_NAME:
        before: Mapping[str, Any] = a.pop(section, None) or {}
        after: Mapping[str, Any] = b.pop(section, None) or {}
        for name in before.keys() | after.keys():
            path = f"{section}.{name}"
            if name not in after:
                found.append((path, f"{path} (removed)"))
            elif name not in before:
                found.append((path, f"{path} (added)"))
            else:
                found.extend((p, p) for p in _leaves(before[name], after[name], path))
    found.extend((p, p) for p in _leaves(a, b, ""))
    return [line for _, line in sorted(found)]


def _leaves(old: Any, new: Any, prefix: str) -> list[str]:
    """The leaf paths (under ``prefix``) whose values differ between ``old`` and ``new``."""
    a, b = flatten(old, prefix), flatten(new, prefix)
    return [p for p in set(a) | set(b) if a.get(p, _MISSING) != b.get(p, _MISSING)]
