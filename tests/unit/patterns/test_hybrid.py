"""Hybrids in process: a pool as a pipeline stage, a pipeline as a fan-out's worker."""

from __future__ import annotations

from typing import Any

from eblocks import Context, Message
from eblocks.message import IDEMPOTENCY_HEADER
from eblocks.spec import parse_spec
from eblocks.workload import relay

SPEC = parse_spec(
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
patterns:
  pool: {manager-worker: {manager: boss, worker: bang}}
  hybrid: {pipeline: [upper, pool, ask]}
  each: {pipeline: [upper, pool]}
  fan: {divide-conquer: {divide: split, worker: each, combine: join}}
  outer: {pipeline: [fan, ask]}
""",
    "unit.yaml",
)


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


HANDLERS = {
    "upper": upper,
    "boss": relay,
    "bang": (bang, 3),
    "ask": ask,
    "split": split,
    "join": join,
}


async def test_a_pipeline_stage_may_be_a_pool(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, HANDLERS)
    reply = await mesh.client.call("hybrid", Message(b"hi", {IDEMPOTENCY_HEADER: "k"}))
    assert reply.body == b"HI!?"


async def test_a_pool_is_called_by_name(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, HANDLERS)
    assert (await mesh.client.call("pool", Message(b"x"))).body == b"x!"


async def test_a_fan_out_over_a_pipeline_with_a_pool_inside_a_pipeline(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, HANDLERS)
    reply = await mesh.client.call("outer", Message(b"a b c"))
    # parts are JSON strings: upper-cased with their quotes, then '!' from the pool
    assert reply.body == b'"A"! "B"! "C"!?'


async def test_the_key_survives_a_nested_pattern(local_mesh: Any) -> None:
    keys: list[str | None] = []

    def record(msg: Message, ctx: Context) -> bytes:
        keys.append(ctx.idempotency_key)
        return msg.body

    mesh = await local_mesh(SPEC, {**HANDLERS, "ask": record})
    await mesh.client.call("hybrid", Message(b"hi", {IDEMPOTENCY_HEADER: "doc-9"}))
    assert keys == ["doc-9"]  # the stage after the pool still has the document's key
