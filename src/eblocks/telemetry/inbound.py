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

from aiohttp import web
from aiohttp.typedefs import Middleware
from opentelemetry.context import attach, detach
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from eblocks.message import (
    ERROR_HEADER,
    PATTERN_HEADER,
    REQUEST_ID_HEADER,
    SOURCE_HEADER,
    STAGE_HEADER,
)
from eblocks.telemetry.core import Telemetry
from eblocks.telemetry.tracing import current_trace_id

__all__ = ["CLIENT_CLOSED", "DIRECT", "TRACEPARENT", "middleware", "observe", "trace_id_of"]

DIRECT = "direct"
"""The route of a call made to a block by name, outside any pattern."""

CLIENT_CLOSED = 499
"""The status counted for a request whose caller went away (nginx's convention)."""

TRACEPARENT = "traceparent"

AioHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RouteOf = Callable[[web.Request], str]


def observe(tel: Telemetry, handler: AioHandler) -> AioHandler:
    """``handler`` (a handler block's catch-all) with inbound telemetry around it.

    A partial, not a closure: one coroutine frame less on every request.
    """
    inner = _observed if tel.tracing is None else _traced
    return functools.partial(inner, tel, handler, _pattern_route)


def middleware(tel: Telemetry) -> Middleware:
    """An aiohttp middleware with inbound telemetry for an application block."""
    inner = _observed if tel.tracing is None else _traced

    @web.middleware
    async def telemetry(request: web.Request, handler: AioHandler) -> web.StreamResponse:
        return await inner(tel, handler, _path_route, request)

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
    headers = request.headers
    route = route_of(request)
    peer = tel.peer(headers.get(SOURCE_HEADER))
    series = tel.inbound.get(peer, route)
    series.inflight += 1
    monotonic = tel.clock.monotonic
    began = monotonic()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        series.inflight -= 1
        now = monotonic()
        nin = request.content_length or 0
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
                peer,
                route,
                status,
                now - began,
                nin,
                nout,
                0,
                reason,
                headers.get(REQUEST_ID_HEADER),
                current_trace_id() if tel.tracing else trace_id_of(headers.get(TRACEPARENT)),
            )


async def _traced(
    tel: Telemetry, handler: AioHandler, route_of: RouteOf, request: web.Request
) -> web.StreamResponse:
    """`_observed` inside a server span whose parent is the caller's ``traceparent``.

    The span is started, made current and ended by hand (not with the SDK's
    nested context managers), and its attributes are only built when it is
    recorded: most requests are not sampled (docs/benchmarks.md).
    """
    tracing = tel.tracing
    if tracing is None:
        return await _observed(tel, handler, route_of, request)
    headers = request.headers
    route = route_of(request)
    span = tracing.server_span(
        f"{tel.block} {route}", headers.get(TRACEPARENT), headers.get("tracestate")
    )
    if span.is_recording():
        span.set_attributes(_server_attributes(tel, request, route))
    token = attach(set_span_in_context(span))
    try:
        response = await _observed(tel, handler, route_of, request)
    except web.HTTPException as exc:  # an application block's 404 and the like
        if span.is_recording():
            span.set_attribute("http.response.status_code", exc.status)
            if exc.status >= 500:
                span.set_status(Status(StatusCode.ERROR, exc.reason))
        raise
    except BaseException as exc:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    else:
        if span.is_recording():
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                reason = response.headers.get(ERROR_HEADER) or str(response.status)
                span.set_status(Status(StatusCode.ERROR, reason))
        return response
    finally:
        detach(token)
        span.end()


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
