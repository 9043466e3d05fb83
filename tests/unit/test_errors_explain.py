"""Errors that explain themselves: every mesh error becomes a response with its reason and origin.

The list of reasons is checked against the error tree itself: a new `MeshError`
subclass fails this test until it is added here (and so to the docs' table).
"""

from __future__ import annotations

import orjson
import pytest

from eblocks import errors
from eblocks.errors import FaultInjectedError, MeshError, UpstreamError
from eblocks.message import ERROR_HEADER, ORIGIN_HEADER
from eblocks.respond import error_response

REASONS = {
    "MeshError": ("internal", 500),
    "BadRequestError": ("bad_request", 400),
    "PayloadTooLargeError": ("too_large", 413),
    "RequestTimeoutError": ("request_timeout", 408),
    "NoEndpointsError": ("no_endpoints", 503),
    "NoRouteError": ("no_route", 404),
    "OverloadedError": ("overloaded", 503),
    "QueueFullError": ("overloaded", 429),
    "RateLimitedError": ("rate_limited", 429),
    "CircuitOpenError": ("circuit_open", 503),
    "FaultInjectedError": ("fault_injected", 418),
    "MeshTimeoutError": ("timeout", 504),
    "ConnectError": ("connect", 502),
    "HandlerError": ("handler", 500),
    "UnauthenticatedError": ("unauthenticated", 401),
    "ForbiddenError": ("forbidden", 403),
    "UpstreamError": ("circuit_open", 503),  # relayed: the failing block's reason and status
}


def every_mesh_error() -> list[type[MeshError]]:
    found: list[type[MeshError]] = [MeshError]
    for cls in found:
        found += cls.__subclasses__()
    return found


def make(cls: type[MeshError]) -> MeshError:
    if cls is FaultInjectedError:
        return FaultInjectedError("aborted", status=418)
    if cls is UpstreamError:
        return UpstreamError("relayed", status=503, reason="circuit_open", origin="deep")
    return cls("failed")


def test_the_table_lists_every_mesh_error() -> None:
    public = {name for name in errors.__all__ if name.endswith("Error")}
    names = {cls.__name__ for cls in every_mesh_error()}
    assert names <= public
    assert names == REASONS.keys()


@pytest.mark.parametrize("cls", every_mesh_error(), ids=lambda cls: cls.__name__)
def test_each_error_carries_its_reason_and_origin_in_headers_and_body(
    cls: type[MeshError],
) -> None:
    reason, status = REASONS[cls.__name__]
    exc = make(cls).with_origin("store")
    response = error_response(exc)
    assert response.status == status
    assert response.headers[ERROR_HEADER] == reason
    origin = "deep" if cls is UpstreamError else "store"  # a relayed error keeps its origin
    assert response.headers[ORIGIN_HEADER] == origin
    assert isinstance(response.body, bytes)
    body = orjson.loads(response.body)
    assert (body["error"], body["origin"]) == (reason, origin)


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    limited = errors.RateLimitedError("no token", origin="s", detail={"retry_after": 0.2})
    assert error_response(limited).headers["retry-after"] == "1"
    limited = errors.RateLimitedError("no token", origin="s", detail={"retry_after": 2.1})
    assert error_response(limited).headers["retry-after"] == "3"  # rounded up
    assert "retry-after" not in error_response(errors.OverloadedError("full", origin="s")).headers
