"""respond.py: a mesh error becomes a response and back, keeping reason and origin."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web

from eblocks.errors import (
    BadRequestError,
    HandlerError,
    MeshError,
    MeshTimeoutError,
    NoEndpointsError,
    OverloadedError,
    PayloadTooLargeError,
    UpstreamError,
)
from eblocks.message import ERROR_HEADER, ORIGIN_HEADER
from eblocks.respond import error_body, error_from_response, error_response


def body_of(response: web.Response) -> bytes:
    assert isinstance(response.body, bytes)
    return response.body


def round_trip(exc: MeshError, target: str = "first") -> UpstreamError:
    response = error_response(exc)
    return error_from_response(response.status, response.headers, body_of(response), target)


@pytest.mark.parametrize(
    ("exc", "status", "reason"),
    [
        (BadRequestError("bad"), 400, "bad_request"),
        (PayloadTooLargeError("big"), 413, "too_large"),
        (HandlerError("raised"), 500, "handler"),
        (NoEndpointsError("none"), 503, "no_endpoints"),
        (OverloadedError("busy"), 503, "overloaded"),
        (MeshTimeoutError("late"), 504, "timeout"),
        (MeshError("defect"), 500, "internal"),
    ],
)
def test_status_and_reason_headers(exc: MeshError, status: int, reason: str) -> None:
    response = error_response(exc.with_origin("b"))
    assert response.status == status
    assert response.headers[ERROR_HEADER] == reason
    assert response.headers[ORIGIN_HEADER] == "b"
    assert response.content_type == "application/json"
    assert orjson.loads(body_of(response))["error"] == reason


def test_body_carries_message_origin_and_detail() -> None:
    exc = HandlerError("handler failed", origin="b", detail={"block": "b", "stage": 1})
    assert error_body(exc) == {
        "error": "handler",
        "origin": "b",
        "message": "handler failed",
        "block": "b",
        "stage": 1,
    }


def test_round_trip_keeps_status_reason_origin_and_detail() -> None:
    exc = HandlerError("handler failed in stage 1", origin="b", detail={"pattern": "p", "stage": 1})
    back = round_trip(exc, target="a")
    assert back.upstream_status == 500
    assert back.upstream_reason == "handler"
    assert back.origin == "b"  # the failing block, not the target called
    assert back.message == "handler failed in stage 1"
    assert back.detail == {"pattern": "p", "stage": 1}
    assert back.retry_after is None


def test_relaying_an_upstream_error_changes_nothing() -> None:
    first = error_response(MeshTimeoutError("late", origin="c", detail={"target": "d"}))
    relayed = error_response(
        round_trip(MeshTimeoutError("late", origin="c", detail={"target": "d"}))
    )
    assert relayed.status == first.status == 504
    assert dict(relayed.headers) == dict(first.headers)
    assert orjson.loads(body_of(relayed)) == orjson.loads(body_of(first))


def test_with_origin_only_fills_a_missing_origin() -> None:
    assert MeshError("x").with_origin("a").origin == "a"
    assert MeshError("x", origin="b").with_origin("a").origin == "b"


@pytest.mark.parametrize(("seconds", "header"), [(2.4, "3"), (0.2, "1"), (7, "7")])
def test_retry_after_header(seconds: float, header: str) -> None:
    response = error_response(OverloadedError("busy", detail={"retry_after": seconds}))
    assert response.headers["retry-after"] == header


def test_no_retry_after_header_by_default() -> None:
    assert "retry-after" not in error_response(OverloadedError("busy")).headers


def test_retry_after_survives_the_round_trip() -> None:
    back = round_trip(OverloadedError("busy", origin="b", detail={"retry_after": 3}))
    assert back.retry_after == 3.0
    assert error_response(back).headers["retry-after"] == "3"


def test_unparseable_retry_after_is_ignored() -> None:
    headers = {ERROR_HEADER: "overloaded", ORIGIN_HEADER: "b", "retry-after": "soon"}
    assert error_from_response(503, headers, b"", "b").retry_after is None


def test_non_mesh_response_falls_back_to_target_and_keeps_body() -> None:
    back = error_from_response(502, {}, b"<html>bad gateway</html>", "store")
    assert (back.upstream_status, back.upstream_reason, back.origin) == (502, "upstream", "store")
    assert back.message == "store answered 502"
    assert back.detail == {"body": "<html>bad gateway</html>"}


def test_long_foreign_body_is_truncated() -> None:
    back = error_from_response(500, {}, b"x" * 5000, "store")
    assert back.detail["body"] == "x" * 512


def test_empty_body() -> None:
    back = error_from_response(503, {ERROR_HEADER: "no_endpoints"}, b"", "b")
    detail: dict[str, Any] = back.detail
    assert (back.upstream_reason, back.message, detail) == ("no_endpoints", "b answered 503", {})
