"""The only place a mesh error becomes an HTTP response, and back.

Every mesh-generated failure carries ``x-eblocks-error: <reason>`` and
``x-eblocks-origin: <block>`` and a JSON body ``{"error", "origin", "message",
...detail}``. An error relayed from another block keeps that block's status,
reason, origin and body, so the caller of a pipeline sees the failing stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from eblocks.errors import MeshError, UpstreamError
from eblocks.message import ERROR_HEADER, ORIGIN_HEADER

__all__ = ["error_body", "error_from_response", "error_response", "status_of"]

_JSON = "application/json"


def error_body(exc: MeshError) -> dict[str, Any]:
    reason = exc.upstream_reason if isinstance(exc, UpstreamError) else exc.reason
    body: dict[str, Any] = {"error": reason, "origin": exc.origin, "message": exc.message}
    body.update(exc.detail)
    return body


def status_of(exc: MeshError) -> tuple[int, str]:
    """The status and reason a mesh error is answered with (telemetry counts them too)."""
    if isinstance(exc, UpstreamError):
        return exc.upstream_status, exc.upstream_reason
    return exc.status, exc.reason


def error_response(exc: MeshError) -> web.Response:
    """Turn a mesh error into the response the caller receives."""
    status, reason = status_of(exc)
    if isinstance(exc, UpstreamError):
        retry_after = exc.retry_after
    else:
        retry_after = exc.detail.get("retry_after")
    headers = {ERROR_HEADER: reason, ORIGIN_HEADER: exc.origin}
    if retry_after is not None:
        # whole seconds (RFC 9110), rounded up: a client that waits that long finds a token
        headers["retry-after"] = str(max(1, math.ceil(float(retry_after))))
    return web.Response(
        status=status, body=orjson.dumps(error_body(exc)), content_type=_JSON, headers=headers
    )


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, target: str
) -> UpstreamError:
    """Rebuild the error a block answered with, keeping its reason and origin."""
    reason = headers.get(ERROR_HEADER) or "upstream"
    origin = headers.get(ORIGIN_HEADER) or target
    detail: dict[str, Any] = {}
    message = f"{target} answered {status}"
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or message)
        detail = {k: v for k, v in parsed.items() if k not in {"error", "origin", "message"}}
    elif body:
        detail["body"] = body[:512].decode(errors="replace")
    retry_after = _retry_after(headers.get("retry-after"))
    return UpstreamError(
        message, status=status, reason=reason, origin=origin, detail=detail, retry_after=retry_after
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
