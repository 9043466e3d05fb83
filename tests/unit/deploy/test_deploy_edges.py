"""The call graph the NetworkPolicies admit: derived from the patterns, checked by real calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from eblocks import Block, Endpoint, MeshClient, Message
from eblocks.deploy import OUTSIDE, Edge, callers, pattern_edges
from eblocks.message import IDEMPOTENCY_HEADER
from eblocks.spec import MeshSpec, load_spec, parse_spec
from eblocks.testing import StaticResolver
from eblocks.workload import relay

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NESTED = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults: {timeout: 10s}
blocks:
  upper: {handler: "tests:upper"}
  boss: {}
  bang: {handler: "tests:bang"}
  ask: {handler: "tests:ask"}
  split: {handler: "tests:split"}
  join: {handler: "tests:join"}
  lonely: {handler: "tests:ask"}
patterns:
  pool: {manager-worker: {manager: boss, worker: bang}}
  hybrid: {pipeline: [upper, pool, ask]}
  each: {pipeline: [upper, pool]}
  fan: {divide-conquer: {divide: split, worker: each, combine: join}}
  outer: {pipeline: [fan, ask]}
""",
    "unit.yaml",
)


def _pairs(edges: Sequence[Edge]) -> set[tuple[str, str]]:
    return {(edge.source, edge.target) for edge in edges}


def test_textpipe_is_a_chain_entered_from_outside() -> None:
    spec = load_spec(EXAMPLES / "textpipe" / "mesh.yaml")
    assert _pairs(pattern_edges(spec)) == {
        (OUTSIDE, "clean"),
        ("clean", "tokenize"),
        ("tokenize", "count"),
    }
    assert callers(spec, pattern_edges(spec)) == {
        "clean": {OUTSIDE},
        "count": {"tokenize"},
        "tokenize": {"clean"},
    }


def test_a_pool_inside_a_pipeline_is_called_by_the_stage_before_it() -> None:
    spec = load_spec(EXAMPLES / "hybrid" / "mesh.yaml")
    assert _pairs(pattern_edges(spec)) == {
        (OUTSIDE, "clean"),
        ("clean", "dispatcher"),  # clean runs the pool in place...
        ("clean", "count"),  # ...then forwards to the stage after it
        (OUTSIDE, "dispatcher"),  # the pool may be called by name
        ("dispatcher", "tokenize"),
        (OUTSIDE, "chunks"),
        ("chunks", "stats"),
        ("chunks", "merge"),
    }


def test_a_block_no_pattern_names_is_open() -> None:
    assert callers(NESTED, pattern_edges(NESTED))["lonely"] == {OUTSIDE}


def test_edges_of_other_sources_are_merged_by_union() -> None:
    found = [*pattern_edges(NESTED), Edge("ask", "bang", "policy:allow-ask")]
    assert callers(NESTED, found)["bang"] == {"boss", "ask"}


def test_edges_are_sorted_and_unique() -> None:
    edges = pattern_edges(NESTED)
    assert list(edges) == sorted(set(edges))


# -- the derivation against what the runtime really does -------------------------------------


class _Recording:
    """A block's resolver that notes every block it looks up: the calls it makes."""

    def __init__(self, source: str, inner: StaticResolver, seen: set[tuple[str, str]]) -> None:
        self.source, self.inner, self.seen = source, inner, seen

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        self.seen.add((self.source, block))
        return self.inner.endpoints(block)

    async def watch(self) -> AsyncIterator[Any]:
        async for view in self.inner.watch():
            yield view


def upper(msg: Message) -> bytes:
    return msg.body.upper()


def bang(msg: Message) -> bytes:
    return msg.body + b"!"


def ask(msg: Message) -> bytes:
    return msg.body + b"?"


def split(msg: Message) -> list[str]:
    return msg.text().split()


def join(msg: Message) -> str:
    return " ".join(msg.json())


HANDLERS: dict[str, Callable[..., Any]] = {
    "upper": upper,
    "boss": relay,
    "bang": bang,
    "ask": ask,
    "split": split,
    "join": join,
    "lonely": ask,
}


@pytest.fixture
async def running() -> AsyncIterator[tuple[MeshSpec, MeshClient, set[tuple[str, str]]]]:
    seen: set[tuple[str, str]] = set()
    shared = StaticResolver()
    blocks: list[Block] = []
    outside = MeshClient(NESTED, _Recording(OUTSIDE, shared, seen))
    try:
        for name, handler in HANDLERS.items():
            client = MeshClient(NESTED, _Recording(name, shared, seen), source=name)
            block = Block.in_mesh(name, handler, app=None, client=client, instance=f"{name}-0")
            blocks.append(block)
            await block.start("127.0.0.1", 0)
            shared.set(name, [f"127.0.0.1:{block.port}"])
        yield NESTED, outside, seen
    finally:
        await outside.aclose()
        for block in blocks:
            await block.stop()


async def test_every_call_the_runtime_makes_is_an_edge(
    running: tuple[MeshSpec, MeshClient, set[tuple[str, str]]],
) -> None:
    spec, client, seen = running
    for pattern in sorted(spec.patterns):
        await client.call(pattern, Message(b"a b", {IDEMPOTENCY_HEADER: pattern}))
    derived = _pairs(pattern_edges(spec))
    assert seen == derived  # no call a policy would block, no edge nobody uses
