"""Context: what a handler knows, and what travels with its outbound calls."""

from __future__ import annotations

import pytest

from eblocks.block.context import Context
from eblocks.message import IDEMPOTENCY_HEADER, REQUEST_ID_HEADER, Message


def context(key: str | None = "doc-1") -> Context:
    return Context(block="a", instance="a-1", request_id="req-1", idempotency_key=key)


def test_outbound_adds_request_id_and_idempotency_key() -> None:
    out = context().outbound(Message(b"x", {"x-other": "1"}))
    assert out.headers == {"x-other": "1", REQUEST_ID_HEADER: "req-1", IDEMPOTENCY_HEADER: "doc-1"}


def test_outbound_keeps_ids_the_message_sets() -> None:
    msg = Message(b"x", {REQUEST_ID_HEADER: "own", IDEMPOTENCY_HEADER: "part-3"})
    assert context().outbound(msg) == msg


def test_outbound_without_an_idempotency_key() -> None:
    assert context(key=None).outbound(Message()).headers == {REQUEST_ID_HEADER: "req-1"}


async def test_calling_without_a_mesh_client_says_so() -> None:
    with pytest.raises(RuntimeError, match="no mesh client"):
        await context().call("b", b"x")
    with pytest.raises(RuntimeError, match="no mesh client"):
        await context().forward("p", 1, Message())


def test_logger_tags_the_request_id() -> None:
    logger = context().logger
    assert logger.extra == {"request_id": "req-1"}
    assert logger.logger.name == "eblocks.block.a"
