"""Message: bytes plus lower-case headers, immutable."""

from __future__ import annotations

import dataclasses

import pytest

from eblocks.message import Message


def test_of_builds_from_bytes_text_and_json() -> None:
    assert Message.of(b"raw").body == b"raw"
    assert Message.of("text").body == b"text"
    assert Message.of({"a": [1, 2]}).json() == {"a": [1, 2]}
    assert Message.of([1]).body == b"[1]"


def test_of_turns_keyword_names_into_header_names() -> None:
    msg = Message.of("x", Idempotency_Key="k", x_request_id="r")
    assert msg.headers == {"idempotency-key": "k", "x-request-id": "r"}


def test_from_wire_drops_transport_headers_and_lowers_names() -> None:
    wire = {"Host": "h", "Content-Length": "3", "Connection": "keep-alive", "X-Request-Id": "r"}
    assert Message.from_wire(b"abc", wire).headers == {"x-request-id": "r"}


def test_header_lookup_is_case_insensitive() -> None:
    msg = Message(b"", {"x-a": "1"})
    assert msg.header("X-A") == "1"
    assert msg.header("x-b") is None
    assert msg.header("x-b", "d") == "d"


def test_replace_merges_headers_and_keeps_the_original() -> None:
    msg = Message(b"one", {"a": "1", "b": "2"})
    new = msg.replace(body=b"two", headers={"B": "3", "c": "4"})
    assert new == Message(b"two", {"a": "1", "b": "3", "c": "4"})
    assert msg == Message(b"one", {"a": "1", "b": "2"})
    assert msg.replace().body == b"one"


def test_without_drops_named_headers() -> None:
    assert Message(b"", {"a": "1", "b": "2"}).without("A").headers == {"b": "2"}


def test_message_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Message().body = b"x"  # type: ignore[misc]


def test_text_and_json() -> None:
    assert Message("héllo".encode()).text() == "héllo"
    assert Message(b'{"n": 1}').json() == {"n": 1}
