"""Who calls whom: the mesh's call graph, derived from its patterns.

The edges follow what the runtime does (`eblocks.patterns.plan`, D3, D13):
whoever holds a message walks a pipeline; a nested pattern runs in place and
its output comes back to the holder; the first block stage met takes over and
walks on itself. A manager calls its worker, a divider its worker and its
combiner. Every pattern may be called by name from outside (a client, a
gateway, another block's handler), so each is walked once from `OUTSIDE`::

    pipeline [clean, pool(manager -> worker), count]
        OUTSIDE -> clean -> manager -> worker
                   clean -> count

The result feeds the NetworkPolicies (`netpol`). It is a plain set of `Edge`
so that other sources of allowed calls (authorization policies, later) are
merged by union before `callers` turns them into who may reach each block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from eblocks.spec.models import (
    DivideConquerSpec,
    ManagerWorkerSpec,
    MeshSpec,
    PipelineSpec,
)

__all__ = ["OUTSIDE", "Edge", "callers", "describe", "pattern_edges"]

OUTSIDE = "*"
"""A caller outside every pattern: a client, a gateway, a handler's own call."""


@dataclass(frozen=True, order=True, slots=True)
class Edge:
    """``source`` (a block or `OUTSIDE`) sends requests to block ``target``."""

    source: str
    target: str
    via: str
    """The pattern (or policy) that makes the call; kept for explanations."""


def pattern_edges(spec: MeshSpec) -> tuple[Edge, ...]:
    """Every call the spec's patterns make, sorted, each once."""
    found: set[Edge] = set()
    for name in spec.patterns:
        _walk(spec, name, OUTSIDE, found)
    return tuple(sorted(found))


def callers(spec: MeshSpec, edges: Iterable[Edge]) -> dict[str, frozenset[str]]:
    """The sources allowed to reach each block; a block no pattern reaches is open (`OUTSIDE`)."""
    sources: dict[str, set[str]] = {name: set() for name in spec.blocks}
    for edge in edges:
        if edge.target in sources:
            sources[edge.target].add(edge.source)
    return {name: frozenset(found or {OUTSIDE}) for name, found in sorted(sources.items())}


def _walk(spec: MeshSpec, pattern: str, holder: str, found: set[Edge]) -> None:
    """Add the calls made when ``holder`` runs ``pattern`` from its start."""
    body = spec.patterns[pattern]
    if isinstance(body, PipelineSpec):
        for stage in body.stages:
            if stage in spec.patterns:
                _walk(spec, stage, holder, found)  # runs in place; the holder goes on
            else:
                found.add(Edge(holder, stage, pattern))
                holder = stage  # the stage takes over and forwards
    elif isinstance(body, ManagerWorkerSpec):
        pool = body.manager_worker
        found.add(Edge(holder, pool.manager, pattern))
        _call(spec, pool.manager, pool.worker, pattern, found)
    elif isinstance(body, DivideConquerSpec):
        fan = body.divide_conquer
        found.add(Edge(holder, fan.divide, pattern))
        _call(spec, fan.divide, fan.worker, pattern, found)
        _call(spec, fan.divide, fan.combine, pattern, found)


def _call(spec: MeshSpec, holder: str, target: str, via: str, found: set[Edge]) -> None:
    if target in spec.patterns:
        _walk(spec, target, holder, found)
    else:
        found.add(Edge(holder, target, via))


def describe(edges: Iterable[Edge]) -> Mapping[str, tuple[str, ...]]:
    """``target -> ("source via pattern", ...)``, for comments and error messages."""
    rows: dict[str, list[str]] = {}
    for edge in sorted(edges):
        source = "outside" if edge.source == OUTSIDE else edge.source
        rows.setdefault(edge.target, []).append(f"{source} via {edge.via}")
    return {target: tuple(lines) for target, lines in sorted(rows.items())}
