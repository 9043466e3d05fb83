"""Plan: walking pipelines with nested patterns; locating a stage."""

from __future__ import annotations

import pytest

from eblocks.errors import BadRequestError
from eblocks.message import PATTERN_HEADER, STAGE_HEADER, Message
from eblocks.patterns import Plan
from eblocks.spec import parse_spec

PLAN = Plan({"outer": ("a", "inner", "d"), "inner": ("b", "c")})


class Mesh:
    """A fake mesh: each block appends its name to the body, then walks on as a filter does."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.seen: list[tuple[str, str | None, str | None]] = []

    async def send(self, block: str, msg: Message) -> Message:
        pattern, stage = msg.header(PATTERN_HEADER), msg.header(STAGE_HEADER)
        self.seen.append((block, pattern, stage))
        out = msg.without(PATTERN_HEADER, STAGE_HEADER).replace(body=msg.body + block.encode())
        if pattern is None or stage is None:
            return out
        return await self.plan.run(pattern, int(stage) + 1, out, self.send)


async def test_walks_a_pipeline_with_a_nested_pattern() -> None:
    mesh = Mesh(PLAN)
    out = await PLAN.run("outer", 0, Message(b">", {"x-request-id": "r1"}), mesh.send)
    assert out.body == b">abcd"
    assert mesh.seen == [
        ("a", "outer", "0"),
        ("b", "inner", "0"),
        ("c", "inner", "1"),
        ("d", "outer", "2"),
    ]
    assert out.headers == {"x-request-id": "r1"}  # routing tags are gone, others kept


async def test_first_block_stage_takes_over() -> None:
    calls: list[tuple[str, dict[str, str]]] = []

    async def record(block: str, msg: Message) -> Message:
        calls.append((block, dict(msg.headers)))
        return Message(b"from " + block.encode())

    out = await PLAN.run("outer", 0, Message(b"in"), record)
    assert out.body == b"from a"
    assert calls == [("a", {PATTERN_HEADER: "outer", STAGE_HEADER: "0"})]


async def test_a_nested_pattern_runs_to_completion_before_the_next_stage() -> None:
    calls: list[tuple[str, str | None, str | None]] = []

    async def record(block: str, msg: Message) -> Message:
        calls.append((block, msg.header(PATTERN_HEADER), msg.header(STAGE_HEADER)))
        return Message(msg.body + block.encode())

    out = await PLAN.run("outer", 1, Message(b""), record)
    assert calls == [("b", "inner", "0"), ("d", "outer", "2")]
    assert out.body == b"bd"


async def test_pattern_ending_in_a_nested_pattern() -> None:
    plan = Plan({"p": ("a", "q"), "q": ("b", "c")})
    mesh = Mesh(plan)
    out = await plan.run("p", 0, Message(b""), mesh.send)
    assert out.body == b"abc"
    assert [block for block, _, _ in mesh.seen] == ["a", "b", "c"]


async def test_walking_from_past_the_end_returns_the_message_untagged() -> None:
    async def never(block: str, msg: Message) -> Message:
        raise AssertionError(f"sent to {block}")

    msg = Message(b"done", {PATTERN_HEADER: "inner", STAGE_HEADER: "1", "k": "v"})
    out = await PLAN.run("inner", 2, msg, never)
    assert out == Message(b"done", {"k": "v"})


def test_locate_returns_the_stage_index() -> None:
    assert PLAN.locate("outer", "2", "d") == 2
    assert PLAN.locate("inner", "0", "b") == 0


@pytest.mark.parametrize(
    ("pattern", "stage", "block", "match"),
    [
        ("nope", "0", "a", "unknown pattern 'nope'"),
        ("outer", "first", "a", "x-eblocks-stage must be an integer, got 'first'"),
        ("outer", "", "a", "must be an integer"),
        ("outer", "1", "a", "stage 1 of pattern 'outer' is not block 'a'"),
        ("outer", "3", "d", "stage 3 of pattern 'outer' is not block 'd'"),
        ("outer", "-1", "d", "stage -1 of pattern 'outer' is not block 'd'"),
    ],
)
def test_locate_errors(pattern: str, stage: str, block: str, match: str) -> None:
    with pytest.raises(BadRequestError, match=match):
        PLAN.locate(pattern, stage, block)


def test_locate_error_detail() -> None:
    with pytest.raises(BadRequestError) as info:
        PLAN.locate("outer", "1", "a")
    assert info.value.detail == {"pattern": "outer", "stage": 1}
    assert info.value.status == 400


def test_from_spec() -> None:
    spec = parse_spec(
        "apiVersion: eblocks/v1\nmesh: m\n"
        "blocks:\n  a: {handler: h:a}\n  b: {handler: h:b}\n"
        "patterns:\n  p: {pipeline: [a, q]}\n  q: {pipeline: [b]}\n"
    )
    plan = Plan.from_spec(spec)
    assert "p" in plan
    assert "q" in plan
    assert "a" not in plan
    assert plan.stages("p") == ("a", "q")
