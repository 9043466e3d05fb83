"""Checks across the spec that one field alone cannot make: names and nesting.

They run on the raw YAML data, defensively, so that they report alongside the
field errors instead of hiding behind them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["check_references"]

Loc = tuple[str | int, ...]


def check_references(data: Mapping[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Yield (location, message) for every cross-reference problem."""
    blocks = _mapping(data.get("blocks"))
    patterns = {name: _stages(p) for name, p in _mapping(data.get("patterns")).items()}
    for name in sorted(set(blocks) & set(patterns)):
        yield ("patterns", name), f"name {name!r} is used by a block and a pattern"
    known = ", ".join(sorted(set(blocks) | set(patterns)))
    for name, stages in patterns.items():
        for index, stage in enumerate(stages):
            if isinstance(stage, str) and stage not in blocks and stage not in patterns:
                loc: Loc = ("patterns", name, "pipeline", index)
                yield loc, f"unknown block or pattern {stage!r} (expected one of: {known})"
    yield from _cycles(patterns)
    default_replicas = _mapping(data.get("defaults")).get("replicas", 1)
    for name, block in blocks.items():
        block = _mapping(block)
        replicas = block.get("replicas", default_replicas)
        if block.get("port") is not None and isinstance(replicas, int) and replicas > 1:
            yield ("blocks", name, "port"), f"a fixed port needs replicas: 1 (block has {replicas})"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _stages(pattern: Any) -> list[Any]:
    stages = _mapping(pattern).get("pipeline")
    return stages if isinstance(stages, list) else []


def _cycles(patterns: Mapping[str, list[Any]]) -> Iterator[tuple[Loc, str]]:
    """Report each pattern that reaches itself through nested stages."""
    for start in patterns:
        path = _find_cycle(patterns, start, [start])
        if path is not None:
            index = patterns[start].index(path[1])
            chain = " -> ".join(path)
            yield ("patterns", start, "pipeline", index), f"patterns nest in a cycle: {chain}"


def _find_cycle(patterns: Mapping[str, list[Any]], name: str, path: list[str]) -> list[str] | None:
    for stage in patterns[name]:
        if not isinstance(stage, str) or stage not in patterns:
            continue
        if stage == path[0]:
            return [*path, stage]
        if stage in path:
            continue  # a cycle not through `path[0]`; reported from its own start
        found = _find_cycle(patterns, stage, [*path, stage])
        if found is not None:
            return found
    return None
