"""`eblocks bench telemetry`: the CPU cost of telemetry per request, in process, side by side.

The real code paths, without sockets, so the figure is the telemetry's own
cost and not the machine's noise:

- outbound: the client stack of `block/stack.py` over a transport that answers
  at once (`eblocks.testing.transport_from`), without and with a `Telemetry`;
- inbound: the PM socket's handler, bare and wrapped by `telemetry.inbound`,
  called with one aiohttp request object.

Each variant runs ``calls`` times per round, the variants interleaved in every
round; CPU time per call (``time.process_time``) is reported as the median
over rounds, and the added cost as the median of the per-round differences.
Variants: ``off`` (no telemetry), ``metrics`` (counters and windows),
``tracing 10%`` (metrics plus OpenTelemetry; every request starts a trace,
sampled at 10 %, spans dropped by a null exporter: the cost at a mesh's
entry), ``tracing, unsampled`` (the same, inside a caller's unsampled trace:
the cost at every later hop; outbound, the calls run under the server span
the inbound side makes for such a request, current for the whole round as
it is for a handler's calls: its cost is the inbound side's), ``access log``
(metrics plus a JSON line per request to a temporary file).

`side_telemetry` builds the telemetry of the ``--telemetry`` sides of
`eblocks bench overhead` (the same tracing set-up, end to end over HTTP).
"""

from __future__ import annotations

import asyncio
import functools
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Span, set_span_in_context

from eblocks._types import Call, Send, SystemClock
from eblocks.block.stack import client_stack
from eblocks.message import IDEMPOTENCY_HEADER, REQUEST_ID_HEADER, SOURCE_HEADER, Message
from eblocks.spec import parse_spec
from eblocks.telemetry import AccessLog, Telemetry
from eblocks.telemetry.inbound import observe
from eblocks.telemetry.tracing import Tracing
from eblocks.testing import StaticResolver, transport_from

__all__ = ["SIDES", "VARIANTS", "run_telemetry_bench", "side_telemetry"]

VARIANTS = ("off", "metrics", "tracing 10%", "tracing, unsampled", "access log")
SIDES = ("telemetry-off", "telemetry")
"""The sides `bench overhead --telemetry` adds; `side_telemetry` builds what each runs."""
_UNSAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
_SPEC = "apiVersion: eblocks/v1\nmesh: bench\nblocks:\n  echo: {handler: a:b}\n"


class _NullExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _sampled(block: str, instance: str) -> Tracing:
    """Tracing at 10 %: spans go through the SDK's batch processor to a null exporter."""
    return Tracing.create(block, instance, sampling=0.1, exporter=_NullExporter())


def side_telemetry(kind: str, block: str, instance: str) -> Telemetry:
    """The `Telemetry` of a block (or a block's client) on side ``kind`` of `bench overhead`.

    ``telemetry-off``: what ``telemetry: {metrics: false}`` gives (no per-request
    layer); ``telemetry``: metrics and tracing sampled at 10 %; any other side:
    metrics only, a block's default.
    """
    if kind == "telemetry-off":
        return Telemetry(block, instance, requests=False)
    tracing = _sampled(block, instance) if kind == "telemetry" else None
    return Telemetry(block, instance, tracing=tracing)


def _telemetry(variant: str, folder: Path) -> Telemetry | None:
    if variant == "off":
        return None
    tracing = _sampled("bench", "bench-0") if variant.startswith("tracing") else None
    log = (
        AccessLog(folder / f"access-{uuid.uuid4().hex}.jsonl") if variant == "access log" else None
    )
    return Telemetry("bench", "bench-0", tracing=tracing, access_log=log)


def _outbound(stack: Send, message: Message) -> Awaitable[Message]:
    return stack(Call("echo", message))


def _unsampled_parent(tel: Telemetry | None) -> Span | None:
    """The server span of a request of an unsampled trace, as the inbound side makes it."""
    if tel is None or tel.tracing is None:
        return None
    return tel.tracing.server_span("echo", "direct", _UNSAMPLED, None)


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 64)


def run_telemetry_bench(
    calls: int = 20_000, rounds: int = 5, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Measure every variant; returns medians (µs per call) and added costs per side."""
    if calls < 100 or rounds < 1:
        raise ValueError(f"need calls >= 100 and rounds >= 1, got {calls} and {rounds}")
    return asyncio.run(_run(calls, rounds, progress or (lambda _: None)))


async def _run(calls: int, rounds: int, progress: Callable[[str], None]) -> dict[str, Any]:
    spec = parse_spec(_SPEC, "<bench telemetry>")
    settings = spec.settings("echo")
    resolver = StaticResolver({"echo": ["127.0.0.1:1"]})
    answer = transport_from(lambda call: Message(call.message.body))
    message = Message(b"x" * 64, {IDEMPOTENCY_HEADER: "k", REQUEST_ID_HEADER: "r"})
    plain = {SOURCE_HEADER: "front", "content-length": "64"}
    request = make_mocked_request("POST", "/", headers=plain)
    child = make_mocked_request("POST", "/", headers={**plain, "traceparent": _UNSAMPLED})
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="eblocks-bench-") as tmp:
        sides: dict[str, Callable[[], Awaitable[object]]] = {}
        parents: dict[str, Span | None] = {}
        opened: list[Telemetry] = []
        for variant in VARIANTS:
            out_tel, in_tel = _telemetry(variant, Path(tmp)), _telemetry(variant, Path(tmp))
            opened += [t for t in (out_tel, in_tel) if t is not None]
            stack = client_stack(
                settings, resolver, answer, SystemClock(), random.Random(1), out_tel
            )
            handler = _echo if in_tel is None else observe(in_tel, _echo)
            unsampled = variant == "tracing, unsampled"
            sides[f"outbound {variant}"] = functools.partial(_outbound, stack, message)
            sides[f"inbound {variant}"] = functools.partial(
                handler, child if unsampled else request
            )
            if unsampled:
                parents[f"outbound {variant}"] = _unsampled_parent(out_tel)
        for tel in opened:
            await tel.start()
        try:
            for name, side in sides.items():  # warm-up
                await _time(side, min(calls, 2000), parents.get(name))
            for rnd in range(rounds):
                names = list(sides) if rnd % 2 == 0 else list(sides)[::-1]
                for name in names:
                    progress(f"round {rnd + 1}/{rounds}: {name}")
                    cost = await _time(sides[name], calls, parents.get(name))
                    samples.setdefault(name, []).append(cost)
        finally:
            for tel in opened:
                await tel.aclose()
    return _summary(samples, calls, rounds)


async def _time(
    side: Callable[[], Awaitable[object]], calls: int, parent: Span | None = None
) -> float:
    """CPU µs per call, the process's threads included (the access log's writer too).

    ``parent``: the span current while the calls run (made current once).
    """
    token = attach(set_span_in_context(parent)) if parent is not None else None
    try:
        began = time.process_time()
        for index in range(calls):
            await side()
            if index % 100 == 0:
                await asyncio.sleep(0)  # let background work (the access log writer) run
        return (time.process_time() - began) / calls * 1e6
    finally:
        if token is not None:
            detach(token)


def _summary(samples: dict[str, list[float]], calls: int, rounds: int) -> dict[str, Any]:
    rows = []
    for direction in ("outbound", "inbound"):
        base = samples[f"{direction} off"]
        for variant in VARIANTS:
            values = samples[f"{direction} {variant}"]
            rows.append(
                {
                    "side": direction,
                    "variant": variant,
                    "us_per_call": round(statistics.median(values), 3),
                    "added_us": round(
                        statistics.median(v - b for v, b in zip(values, base, strict=True)), 3
                    ),
                }
            )
    return {"benchmark": "telemetry", "calls": calls, "rounds": rounds, "rows": rows}
