"""Observe the requests an instance receives, at the PM socket (before any other layer).

`observe` wraps the block's aiohttp handler (a handler block) and `middleware`
does the same for a block that is an aiohttp application. Both count each
request once, with its real status and sizes, whatever produced the answer
(the PM, a mesh error, a body that was too large).

Route: the pattern a request is part of (``x-eblocks-pattern``), else
``direct`` for a handler block, else ``METHOD /canonical/{path}`` for an
application block (the route template, never the raw path: bounded labels).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from contextvars import Token

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from eblocks.message import (
    ERROR_HEADER,
    PATTERN_HEADER,
    REQUEST_ID_HEADER,
    SOURCE_HEADER,
    STAGE_HEADER,
)
from eblocks.telemetry.core import Telemetry
from eblocks.telemetry.current import enter, leave
from eblocks.telemetry.spans import UnsampledSpan
from eblocks.telemetry.tracing import current_trace_id

__all__ = ["CLIENT_CLOSED", "DIRECT", "TRACEPARENT", "middleware", "observe", "trace_id_of"]

DIRECT = "direct"
"""The route of a call made to a block by name, outside any pattern."""

CLIENT_CLOSED = 499
"""The status counted for a request whose caller went away (nginx's convention)."""

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

AioHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RouteOf = Callable[[web.Request], str]


def observe(tel: Telemetry, handler: AioHandler) -> AioHandler:
    """``handler`` (a handler block's catch-all) with inbound telemetry around it.

    A partial, not a closure: one coroutine frame less on every request.
    """
    return functools.partial(_observed, tel, handler, _pattern_route)


def middleware(tel: Telemetry) -> Middleware:
    """An aiohttp middleware with inbound telemetry for an application block."""

    @web.middleware
    async def telemetry(request: web.Request, handler: AioHandler) -> web.StreamResponse:
        return await _observed(tel, handler, _path_route, request)

    return telemetry


def _pattern_route(request: web.Request) -> str:
    return request.headers.get(PATTERN_HEADER) or DIRECT


def _path_route(request: web.Request) -> str:
    pattern = request.headers.get(PATTERN_HEADER)
    if pattern:
        return pattern
    route = request.match_info.route
    resource = route.resource
    path = resource.canonical if resource is not None else "unmatched"
    return f"{request.method} {path}"


async def _observed(
    tel: Telemetry, handler: AioHandler, route_of: RouteOf, request: web.Request
) -> web.StreamResponse:
    """Count the request; with tracing, inside a server span whose parent is ``traceparent``.

    One coroutine for both (no frame of its own for the span). The span is
    started, made current and ended by hand (not with the SDK's nested
    context managers), and its attributes and status are only set when it is
    recorded: most requests are not sampled (docs/benchmarks.md).
    """
    headers = request.headers
    route = route_of(request)
    tracing = tel.tracing
    span: Span | None = None
    token: Token[Context] | None = None
    recording = False
    if tracing is not None:
        span = tracing.server_span(
            tel.block, route, headers.get(TRACEPARENT), headers.get(TRACESTATE)
        )
        if type(span) is not UnsampledSpan and span.is_recording():  # most are unsampled
            recording = True
            span.set_attributes(_server_attributes(tel, request, route))
        token = enter(span)
    series = tel.inbound_series(headers.get(SOURCE_HEADER), route)
    series.inflight += 1
    monotonic = tel.clock.monotonic
    began = monotonic()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # an application block's 404 and the like
        status = exc.status
        response = exc  # a Response too: its body and x-eblocks-error are counted (below)
        raise
    except asyncio.CancelledError as exc:
        status = CLIENT_CLOSED
        if recording:
            _failed(span, exc)
        raise
    except BaseException as exc:
        if recording:
            _failed(span, exc)
        raise
    finally:
        series.inflight -= 1
        now = monotonic()
        length = headers.get(hdrs.CONTENT_LENGTH)  # `request.content_length`, without its property
        nin = int(length) if length else 0
        nout = 0
        reason = None
        if response is not None:
            body = getattr(response, "body", None)  # web.Response: its bytes, without parsing
            nout = len(body) if type(body) is bytes else (response.content_length or 0)
            if status >= 400:
                reason = response.headers.get(ERROR_HEADER)
        series.add(status, now - began, nin, nout, now)
        if reason is not None:
            series.error(reason)
        if tel.sinks:  # a plain attribute: this runs on every request
            tel.emit(
                True,
                tel.peer(headers.get(SOURCE_HEADER)),
                route,
                status,
                now - began,
                nin,
                nout,
                0,
                reason,
                headers.get(REQUEST_ID_HEADER),
                current_trace_id() if tracing else trace_id_of(headers.get(TRACEPARENT)),
            )
        if token is not None:
            leave(token)
        if recording and span is not None:  # an unsampled span has nothing to end
            if response is not None:
                _answered(span, status, reason or str(status))
            span.end()


def _answered(span: Span | None, status: int, reason: str) -> None:
    """A recorded server span's answer: its status code, an error from 500 up."""
    if span is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, reason))


def _failed(span: Span | None, exc: BaseException) -> None:
    """A recorded server span whose handler raised (a bug, or the caller went away)."""
    if span is not None:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def _server_attributes(tel: Telemetry, request: web.Request, route: str) -> dict[str, str]:
    headers = request.headers
    attributes = {
        "eblocks.block": tel.block,
        "eblocks.instance": tel.instance,
        "eblocks.route": route,
        "eblocks.source": tel.peer(headers.get(SOURCE_HEADER)),
        "http.request.method": request.method,
    }
    pattern = headers.get(PATTERN_HEADER)
    if pattern:
        attributes["eblocks.pattern"] = pattern
        attributes["eblocks.stage"] = headers.get(STAGE_HEADER, "")
    request_id = headers.get(REQUEST_ID_HEADER)
    if request_id:
        attributes["eblocks.request_id"] = request_id
    return attributes


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace>-<span>-<flags>``), if well formed."""
    if traceparent is None:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
