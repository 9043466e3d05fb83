"""Telemetry of outbound calls: one count per call (outermost) and per retry (per try).

`telemetry` sits outermost in the client stack and counts each call once,
after all its tries, with the status the caller sees (a mesh error's status,
as `respond.status_of` maps it). `tries` sits below the retry layer and
counts every try after the first; it also tells the outer layer, through a
context variable set only on a retry, how many retries the call took (for the
access log and the tap).

Route: the pattern the message is part of, else ``direct`` (as inbound).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable

from opentelemetry.trace import Span, Status, StatusCode

from eblocks._types import Call, Layer, Send
from eblocks.errors import MeshError
from eblocks.message import PATTERN_HEADER, REQUEST_ID_HEADER, Message
from eblocks.respond import status_of
from eblocks.telemetry.core import Telemetry
from eblocks.telemetry.current import enter, leave
from eblocks.telemetry.inbound import CLIENT_CLOSED, DIRECT, TRACEPARENT, trace_id_of
from eblocks.telemetry.tracing import Tracing, current_trace_id

__all__ = ["telemetry", "tries"]

_ATTEMPT: contextvars.ContextVar[int] = contextvars.ContextVar("eblocks_attempt", default=1)


def telemetry(tel: Telemetry, target: str) -> Layer:
    table = tel.outbound
    monotonic = tel.clock.monotonic

    def layer(inner: Send) -> Send:
        async def send(call: Call) -> Message:
            headers = call.message.headers
            route = headers.get(PATTERN_HEADER) or DIRECT
            series = table.get(target, route)
            series.inflight += 1
            began = monotonic()
            status, nout = 500, 0
            reason: str | None = "internal"
            try:
                reply = await inner(call)
                status, reason, nout = 200, None, len(reply.body)
                return reply
            except MeshError as exc:
                status, reason = status_of(exc)
                raise
            except asyncio.CancelledError:
                status, reason = CLIENT_CLOSED, "cancelled"
                raise
            finally:
                series.inflight -= 1
                now = monotonic()
                nin = len(call.message.body)
                series.add(status, now - began, nin, nout, now)
                if reason is not None:
                    series.error(reason)
                attempts = _ATTEMPT.get()
                if attempts != 1:
                    _ATTEMPT.set(1)
                if tel.sinks:
                    tel.emit(
                        False,
                        target,
                        route,
                        status,
                        now - began,
                        nin,
                        nout,
                        attempts - 1,
                        reason,
                        headers.get(REQUEST_ID_HEADER),
                        current_trace_id()
                        if tel.tracing
                        else trace_id_of(headers.get(TRACEPARENT)),
                    )

        return send

    return layer


def tries(tel: Telemetry, target: str) -> Layer:
    if tel.tracing is not None:
        return _traced_tries(tel, tel.tracing, target)
    table = tel.outbound

    def layer(inner: Send) -> Send:
        def send(call: Call) -> Awaitable[Message]:
            # a plain function handing back the inner coroutine: no frame on a first try
            if call.attempt != 1:
                route = call.message.headers.get(PATTERN_HEADER) or DIRECT
                table.get(target, route).retries += 1
                _ATTEMPT.set(call.attempt)
            return inner(call)

        return send

    return layer


def _traced_tries(tel: Telemetry, tracing: Tracing, target: str) -> Layer:
    """Each try in a client span; its context goes out in ``traceparent``/``tracestate``.

    An unsampled span (most of them) is only its headers: the try goes on
    with no coroutine of this layer around it, and the span is never made
    current (nothing below this layer reads the current span; the caller's
    stays current, same trace, same decision). A recorded span is current
    during the try and gets its attributes and status (`_recorded`).
    """
    table = tel.outbound
    name = f"call {target}"

    def layer(inner: Send) -> Send:
        def send(call: Call) -> Awaitable[Message]:
            if call.attempt != 1:
                route = call.message.headers.get(PATTERN_HEADER) or DIRECT
                table.get(target, route).retries += 1
                _ATTEMPT.set(call.attempt)
            message = call.message
            headers = dict(message.headers)
            span = tracing.client_span(name, headers)
            traced = call.with_message(Message(message.body, headers))
            if span is None:
                return inner(traced)
            return _recorded(inner, traced, span, target)

        return send

    return layer


async def _recorded(inner: Send, call: Call, span: Span, target: str) -> Message:
    """One try inside a recorded client span: current while the try runs, ended after it."""
    route = call.message.headers.get(PATTERN_HEADER) or DIRECT
    span.set_attributes(_client_attributes(call, target, route))
    token = enter(span)
    try:
        reply = await inner(call)
    except MeshError as exc:
        status, reason = status_of(exc)
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("eblocks.error", reason)
        span.set_status(Status(StatusCode.ERROR, reason))
        raise
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    else:
        span.set_attribute("http.response.status_code", 200)
        return reply
    finally:
        leave(token)
        span.end()


def _client_attributes(call: Call, target: str, route: str) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "eblocks.target": target,
        "eblocks.route": route,
        "eblocks.attempt": call.attempt,
    }
    if call.endpoint is not None:
        attributes["server.address"] = call.endpoint.host
        attributes["server.port"] = call.endpoint.port
        attributes["eblocks.endpoint"] = call.endpoint.instance
    return attributes
