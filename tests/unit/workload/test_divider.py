"""Divide-conquer in process: order kept, parts keyed, a failed part named."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eblocks import Context, Message, UpstreamError
from eblocks.errors import HandlerError, OverloadedError
from eblocks.message import IDEMPOTENCY_HEADER, PART_HEADER
from eblocks.spec import parse_spec
from eblocks.workload.divider import combine_body, split_parts

SPEC_TEXT = """
apiVersion: eblocks/v1
mesh: unit
defaults:
  timeout: 10s
  retries: {attempts: 1}
blocks:
  split: {handler: "tests:split"}
  square: {handler: "tests:square"}
  join: {handler: "tests:join"}
patterns:
  fan:
    divide-conquer: {divide: split, worker: square, combine: join, attempts: 3, parallel: 8}
"""
SPEC = parse_spec(SPEC_TEXT, "unit.yaml")


def split(msg: Message) -> list[int]:
    return [int(n) for n in msg.text().split()]


def join(msg: Message) -> dict[str, Any]:
    return {"results": msg.json(), "type": msg.header("content-type")}


class Squares:
    def __init__(self) -> None:
        self.finished: list[int] = []
        self.keys: dict[int, tuple[str | None, str | None]] = {}

    async def handle(self, msg: Message, ctx: Context) -> dict[str, int]:
        n = msg.json()
        self.keys[n] = (ctx.idempotency_key, msg.header(PART_HEADER))
        if n < 0:
            raise ValueError("negative")
        await asyncio.sleep((10 - n) * 0.01)  # later parts finish first
        self.finished.append(n)
        return {"n": n * n}


async def test_results_keep_the_order_of_the_parts(local_mesh: Any) -> None:
    squares = Squares()
    mesh = await local_mesh(SPEC, {"split": split, "square": (squares.handle, 2), "join": join})
    reply = await mesh.client.call("fan", Message(b"1 2 3 4 5 6", {IDEMPOTENCY_HEADER: "doc"}))
    assert reply.json() == {
        "results": [{"n": n * n} for n in range(1, 7)],
        "type": "application/json",
    }
    assert squares.finished != sorted(squares.finished)  # they really finished out of order
    assert squares.keys[3] == ("doc/2", "2/6")


async def test_a_failed_part_is_named(local_mesh: Any) -> None:
    squares = Squares()
    mesh = await local_mesh(SPEC, {"split": split, "square": squares.handle, "join": join})
    with pytest.raises(UpstreamError) as info:
        await mesh.client.call("fan", Message(b"1 2 -3 4"))
    error = info.value
    assert (error.upstream_reason, error.origin) == ("handler", "square")
    assert (error.detail["part"], error.detail["parts"], error.detail["pattern"]) == (2, 4, "fan")
    assert error.message.startswith("part 2 of 4 of pattern 'fan' failed after 1 try")


async def test_a_part_is_retried_on_a_transient_failure(local_mesh: Any) -> None:
    squares = Squares()
    mesh = await local_mesh(SPEC, {"split": split, "square": squares.handle, "join": join})
    mesh.publish("square", extra=["127.0.0.1:1"])  # round robin sends some parts there first
    reply = await mesh.client.call("fan", Message(b"1 2 3"))
    assert reply.json()["results"] == [{"n": 1}, {"n": 4}, {"n": 9}]


async def test_a_divider_that_returns_no_list_fails_clearly(local_mesh: Any) -> None:
    mesh = await local_mesh(SPEC, {"split": join, "square": Squares().handle, "join": join})
    with pytest.raises(UpstreamError) as info:
        await mesh.client.call("fan", Message(b"[]"))
    assert "must return a list of parts (a JSON array), got a JSON object" in info.value.message


@pytest.mark.parametrize(
    ("body", "got"),
    [
        (b"", "an empty reply (the handler returned None?)"),
        (b"not json", "a reply that is not JSON"),
        (b"null", "null"),
        (b'"a b"', "a JSON string"),
        (b"3", "a number"),
    ],
)
def test_a_divider_reply_that_is_no_list_is_described(body: bytes, got: str) -> None:
    with pytest.raises(HandlerError) as info:
        split_parts(Message(body), "p", "d")
    assert str(info.value).endswith(f"must return a list of parts (a JSON array), got {got}")


def test_split_and_combine_contracts() -> None:
    assert split_parts(Message(b'[1, "a", {"b": 2}]'), "p", "d") == [b"1", b'"a"', b'{"b":2}']
    replies = [Message(b'{"x":1}', {"content-type": "application/json"}), Message(b"plain")]
    assert combine_body(replies) == b'[{"x":1},"plain"]'


async def test_a_part_gets_the_tries_of_one_layer_only(local_mesh: Any) -> None:
    """The worker stack's 3 tries are all a part gets: neither the divider's ``attempts``
    (3) nor the caller's retries (3) multiply them (18 tries before, 3 now)."""
    retried = SPEC_TEXT.replace("retries: {attempts: 1}", "retries: {attempts: 3, backoff: 1ms}")
    calls: list[bytes] = []

    def busy(msg: Message) -> bytes:
        calls.append(msg.body)
        raise OverloadedError("too busy")  # a 503: transient

    mesh = await local_mesh(
        parse_spec(retried, "unit.yaml"), {"split": split, "square": busy, "join": join}
    )
    with pytest.raises(UpstreamError) as info:
        await mesh.client.call("fan", Message(b"7", {IDEMPOTENCY_HEADER: "doc"}))
    assert calls == [b"7"] * 3
    assert info.value.detail["retried"] == 3
    assert info.value.message.startswith("part 0 of 1 of pattern 'fan' failed after 3 tries")
