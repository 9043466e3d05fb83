"""`eblocks bench overhead`: what the Eblock path costs over bare aiohttp.

Two echo servers run side by side, each in its own process (`servers.py`):

- bare:   one aiohttp `ClientSession`  ->  a plain aiohttp echo application
- eblock: `MeshClient` (deadline -> retry -> balance -> transport)  ->  a `Block`

With ``policies`` a third side, ``policies``, runs the same Block and
MeshClient with every traffic and resilience policy configured but none
triggering (`eblocks.bench.servers.POLICIES_SPEC`), and is compared with the
plain eblock side of the same rounds (`PolicyCell`).

With ``telemetry`` two more sides run the same Block and MeshClient with
per-request telemetry off (``telemetry-off``: what ``telemetry: {metrics:
false}`` gives) and with metrics and tracing sampled at 10 % (``telemetry``);
``telemetry_cells`` compare ``telemetry`` and the plain eblock side (metrics
only, the default) with ``telemetry-off``, round by round.

With ``sidecar`` two more sides send the bare side's requests to the same
bare server through a pair of proxies, the data-plane shape of other meshes
(one sidecar next to the caller, one next to the server), next to the
in-process Eblock path (`sidecars.py` starts them):

- ``sidecar-pair``: client -> the caller's `eblocks proxy` (an upstream port,
  the full client stack) -> mTLS -> the server's `eblocks proxy` -> the app
- ``nginx-pair``: client -> nginx A -> nginx B -> the app (``proxy_pass`` to a
  keep-alive upstream on both hops, plaintext; Debian's ``nginx-light``)

``sidecar_cells`` compare each pair with bare (direct), round by round.

Every cell (body size x concurrency) is measured in ``rounds`` rounds; inside a
round the sides run back to back, the order rotating from round to round
(each side runs first in turn), each after its own warm-up. A cell reports the median over rounds of
req/s, p50 and p99 and the median of the per-round paired ratios, so a burst
of noise on the shared machine moves one round, not the result.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import psutil

from eblocks.batch import percentile
from eblocks.bench.machine import describe
from eblocks.bench.servers import POLICIES_SPEC, SECURE_SPECS
from eblocks.bench.sidecars import (
    NGINX_PAIR,
    PAIRS,
    SIDECAR_PAIR,
    BenchError,
    find_nginx,
    nginx_pair,
    proxy_pair,
    stop_process,
)
from eblocks.bench.telemetry import SIDES, side_telemetry
from eblocks.block import MeshClient
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.spec import parse_spec
from eblocks.testing import StaticResolver

if TYPE_CHECKING:
    from eblocks.security import Auth

__all__ = [
    "BenchError",
    "CellResult",
    "OverheadReport",
    "OverheadSettings",
    "PolicyCell",
    "Sample",
    "SecurityCell",
    "Side",
    "Target",
    "run_overhead",
    "summarize_sidecar",
    "summarize_telemetry",
]

KINDS = ("bare", "eblock")
SPEC = """\
apiVersion: eblocks/v1
mesh: bench
blocks:
  echo:
    handler: eblocks.bench.servers:echo
"""
_START_TIMEOUT = 20.0  # a server process that has not said PORT by then is broken
Caller = Callable[[bytes], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class OverheadSettings:
    """What to measure; validated when built."""

    duration: float = 3.0
    warmup: float = 0.5
    sizes: tuple[int, ...] = (64, 4096, 65536)
    concurrency: tuple[int, ...] = (1, 32)
    rounds: int = 3
    host: str = "127.0.0.1"
    security: bool = False  # a third side: mTLS + tokens + authorization
    policies: bool = False  # a side with every policy configured, none triggering
    sidecar: bool = False  # sides through a pair of `eblocks proxy` and a pair of nginx
    telemetry: bool = False  # sides with per-request telemetry off, and metrics + tracing 10 %

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValueError(f"duration must be > 0 seconds, got {self.duration}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0 seconds, got {self.warmup}")
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"sizes must be one or more positive byte counts, got {self.sizes}")
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency must be one or more values >= 1, got {self.concurrency}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured window of one side in one round."""

    kind: str
    size: int
    concurrency: int
    round: int
    position: int  # 0 = ran first in its round, 1 = second
    requests: int
    errors: int
    error_kinds: dict[str, int]
    elapsed_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    warmup_requests: int
    warmup_errors: int
    client_cpu_us: float  # CPU time of the load generator per request
    server_cpu_us: float  # CPU time per request of the server process (a pair: both proxies)


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a cell: medians over rounds, totals of requests and errors."""

    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu_us: float
    server_cpu_us: float
    requests: int
    errors: int


@dataclass(frozen=True, slots=True)
class CellResult:
    """A size x concurrency cell: both sides and how they compare."""

    size: int
    concurrency: int
    bare: Side
    eblock: Side
    rps_ratio: float  # median of per-round eblock/bare req/s
    p50_added_ms: float  # median of per-round eblock - bare p50
    p99_ratio: float  # median of per-round eblock/bare p99


@dataclass(frozen=True, slots=True)
class SecurityCell:
    """A cell's secured side (``mtls`` or ``secure``) against the plain eblock side."""

    side: str
    size: int
    concurrency: int
    plain: Side
    secure: Side
    rps_ratio: float  # median of per-round secure/plain req/s
    p50_added_ms: float  # median of per-round secure - plain p50
    p99_ratio: float


@dataclass(frozen=True, slots=True)
class PolicyCell:
    """A cell's ``policies`` side against the plain eblock side (no policies)."""

    size: int
    concurrency: int
    none: Side
    policies: Side
    rps_ratio: float  # median of per-round policies/none req/s
    p50_added_ms: float  # median of per-round policies - none p50
    p99_ratio: float


@dataclass(frozen=True, slots=True)
class Target:
    """One goal from the issue and whether this run met it."""

    name: str
    size: int
    concurrency: int
    value: float
    limit: float
    ok: bool


@dataclass(slots=True)
class OverheadReport:
    """Everything a run produced; `report.py` writes it as JSON, Markdown and PNG."""

    created: str
    machine: dict[str, object]
    settings: dict[str, object]
    samples: list[Sample] = field(default_factory=list)
    cells: list[CellResult] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    security_cells: list[SecurityCell] = field(default_factory=list)
    policy_cells: list[PolicyCell] = field(default_factory=list)
    policy_layers: dict[str, Any] | None = None  # inbound, in-process CPU (`policy_cost.py`)
    policy_client_layers: dict[str, Any] | None = None  # the client's, likewise
    sidecar_cells: list[SecurityCell] = field(default_factory=list)  # each pair vs bare (direct)
    telemetry_cells: list[SecurityCell] = field(default_factory=list)  # eblock, telemetry vs off

    @property
    def errors(self) -> int:
        return sum(s.errors + s.warmup_errors for s in self.samples)


def run_overhead(
    settings: OverheadSettings, progress: Callable[[str], None] | None = None
) -> OverheadReport:
    """Run the whole benchmark on uvloop when it is installed (as the servers do)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(settings, progress or _quiet, "asyncio"))
    result: OverheadReport = uvloop.run(_run(settings, progress or _quiet, "uvloop"))
    return result


def _quiet(_: str) -> None:
    return None


async def _run(
    settings: OverheadSettings, progress: Callable[[str], None], loop_kind: str
) -> OverheadReport:
    report = OverheadReport(
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=describe(client_loop=loop_kind),
        settings={
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "sizes": list(settings.sizes),
            "concurrency": list(settings.concurrency),
            "rounds": settings.rounds,
            "host": settings.host,
            "security": settings.security,
            "policies": settings.policies,
            "sidecar": settings.sidecar,
            "telemetry": settings.telemetry,
        },
    )
    kinds: tuple[str, ...] = (*KINDS, *SECURE_SPECS) if settings.security else KINDS
    if settings.policies:
        kinds = (*kinds, "policies")
    kinds += SIDES if settings.telemetry else ()
    kinds += PAIRS if settings.sidecar else ()
    nginx = find_nginx() if settings.sidecar else None  # fails before anything starts
    async with AsyncExitStack() as stack:
        bare_port, bare_pid = await stack.enter_async_context(
            _server("bare", settings.host, report)
        )
        eblock_port, eblock_pid = await stack.enter_async_context(
            _server("eblock", settings.host, report)
        )
        bare = await stack.enter_async_context(_bare_caller(settings.host, bare_port))
        eblock = await stack.enter_async_context(_eblock_caller(settings.host, eblock_port))
        sides: dict[str, tuple[Caller, list[psutil.Process]]] = {
            "bare": (bare, [psutil.Process(bare_pid)]),
            "eblock": (eblock, [psutil.Process(eblock_pid)]),
        }
        if settings.security:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eblocks-bench-")))
            for kind in SECURE_SPECS:
                sides[kind] = await _secure_side(stack, kind, state, settings.host, report)
        for kind in kinds:
            if kind == "policies" or kind in SIDES:
                sides[kind] = await _eblock_side(stack, kind, settings.host, report)
        if settings.sidecar:
            assert nginx is not None
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eblocks-pair-")))
            host = settings.host
            pairs = (
                (SIDECAR_PAIR, proxy_pair(host, bare_port, root / "eblocks")),
                (NGINX_PAIR, nginx_pair(nginx, host, bare_port, root / "nginx")),
            )
            for kind, pair in pairs:
                port, pids = await stack.enter_async_context(pair)
                caller = await stack.enter_async_context(_bare_caller(host, port))
                sides[kind] = (caller, [psutil.Process(pid) for pid in pids])
        cells = [(size, conc) for size in settings.sizes for conc in settings.concurrency]
        for rnd in range(settings.rounds):
            for index, (size, conc) in enumerate(cells):
                shift = (rnd + index) % len(kinds)  # each side runs first in turn
                order = kinds[shift:] + kinds[:shift]
                for position, kind in enumerate(order):
                    progress(f"round {rnd + 1}/{settings.rounds}: {kind} {size} B x{conc}")
                    call, server = sides[kind]
                    sample = await _measure(call, server, kind, size, conc, settings, rnd, position)
                    report.samples.append(sample)
    report.machine["loadavg_end"] = list(os.getloadavg())
    report.cells = summarize(report.samples)
    report.targets = check_targets(report.cells)
    if settings.security:
        report.security_cells = summarize_security(report.samples)
        report.targets += check_security_targets(report.security_cells)
    if settings.policies:
        from eblocks.bench.policy_cost import client_cost, inbound_cost

        report.policy_layers = await inbound_cost(rounds=settings.rounds, progress=progress)
        report.policy_client_layers = await client_cost(rounds=settings.rounds, progress=progress)
        report.policy_cells = summarize_policies(report.samples)
        report.targets += check_policy_targets(report.policy_cells)
    report.sidecar_cells = summarize_sidecar(report.samples)
    if settings.telemetry:
        report.telemetry_cells = summarize_telemetry(report.samples)
        report.targets += check_telemetry_targets(report.telemetry_cells)
    return report


async def _eblock_side(
    stack: AsyncExitStack, kind: str, host: str, report: OverheadReport
) -> tuple[Caller, list[psutil.Process]]:
    """A plaintext eblock side: its server process and a MeshClient that calls it."""
    port, pid = await stack.enter_async_context(_server(kind, host, report))
    spec = POLICIES_SPEC if kind == "policies" else SPEC
    caller = await stack.enter_async_context(_eblock_caller(host, port, spec, kind=kind))
    return caller, [psutil.Process(pid)]


async def _secure_side(
    stack: AsyncExitStack, kind: str, state: Path, host: str, report: OverheadReport
) -> tuple[Caller, list[psutil.Process]]:
    """Identities from a throw-away mesh CA, the secured server, and a client with an SVID."""
    from eblocks.security import Auth, LocalIssuer

    text = SECURE_SPECS[kind]
    spec = parse_spec(text, f"<bench {kind}>")
    issuer = LocalIssuer(spec, state)
    issuer.issue_block("echo-0", "echo")
    issuer.issue_client("bench")
    port, pid = await stack.enter_async_context(
        _server(kind, host, report, "--state-dir", str(state))
    )
    auth = Auth.for_holder(spec, state, "bench")
    caller = await stack.enter_async_context(_eblock_caller(host, port, text, auth))
    return caller, [psutil.Process(pid)]


async def _measure(
    call: Caller,
    server: Sequence[psutil.Process],
    kind: str,
    size: int,
    concurrency: int,
    settings: OverheadSettings,
    rnd: int,
    position: int,
) -> Sample:
    body = os.urandom(size)
    warm = await _window(call, body, concurrency, settings.warmup)
    client_cpu, server_cpu = time.process_time(), _cpu_seconds(server)
    latencies, errors, elapsed = await _window(call, body, concurrency, settings.duration)
    client_cpu, server_cpu = time.process_time() - client_cpu, _cpu_seconds(server) - server_cpu
    ms = [x * 1000 for x in latencies]
    per_request_us = 1e6 / len(ms) if ms else 0.0
    return Sample(
        kind=kind,
        size=size,
        concurrency=concurrency,
        round=rnd,
        position=position,
        requests=len(ms),
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        elapsed_s=elapsed,
        rps=len(ms) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        mean_ms=statistics.fmean(ms) if ms else 0.0,
        warmup_requests=len(warm[0]),
        warmup_errors=sum(warm[1].values()),
        client_cpu_us=client_cpu * per_request_us,
        server_cpu_us=server_cpu * per_request_us,
    )


def _cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """CPU time of the server side: the server, or both proxies of a pair."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            raise BenchError(f"server process {process.pid} died during the run") from None
        total += times.user + times.system
    return total


async def _window(
    call: Caller, body: bytes, concurrency: int, seconds: float
) -> tuple[list[float], collections.Counter[str], float]:
    """``concurrency`` closed-loop workers for ``seconds``: latencies, errors, elapsed."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    clock = time.perf_counter
    start = clock()
    stop_at = start + seconds

    async def worker() -> None:
        while (begun := clock()) < stop_at:
            try:
                reply = await call(body)
                if reply != body:
                    raise BenchError(f"echo mismatch: sent {len(body)} B, got {len(reply)} B")
            except Exception as exc:  # every failure is counted and reported, never hidden
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.001)  # a dead server must not turn this into a busy loop
                continue
            latencies.append(clock() - begun)

    if seconds > 0:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, clock() - start


@asynccontextmanager
async def _bare_caller(host: str, port: int) -> AsyncIterator[Caller]:
    """One aiohttp session: connection limit 256, keep-alive 30 s, no auto headers."""
    url = f"http://{host}:{port}/"
    connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30.0)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    ) as session:

        async def call(body: bytes) -> bytes:
            async with session.post(url, data=body) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise BenchError(f"bare server answered {resp.status}")
                return data

        yield call


@asynccontextmanager
async def _eblock_caller(
    host: str, port: int, spec_text: str = SPEC, auth: Auth | None = None, *, kind: str = "eblock"
) -> AsyncIterator[Caller]:
    """`MeshClient` with a parsed spec and a resolver that points at the server."""
    spec = parse_spec(spec_text, "<bench overhead>")
    resolver = StaticResolver({"echo": [f"{host}:{port}"]})
    counter = iter(range(1 << 62))
    # a block's client counts its calls: the telemetry layers are part of the measured path
    telemetry = side_telemetry(kind, "bench", "bench-0")
    async with AsyncExitStack() as closing:
        closing.push_async_callback(telemetry.aclose)  # tracing: flushes and stops its thread
        client = await closing.enter_async_context(
            MeshClient(spec, resolver, source="bench", telemetry=telemetry, auth=auth)
        )

        async def call(body: bytes) -> bytes:
            # an idempotency key, as `eblocks submit` sends, so the retry layer is armed
            msg = Message(body, {IDEMPOTENCY_HEADER: str(next(counter))})
            reply = await client.call("echo", msg)
            return reply.body

        yield call


@asynccontextmanager
async def _server(
    kind: str, host: str, report: OverheadReport, *extra: str
) -> AsyncIterator[tuple[int, int]]:
    """Start an echo server process; always stop it (bounded waits) on the way out."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eblocks.bench.servers",
        kind,
        "--host",
        host,
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        try:
            line = await asyncio.wait_for(_readline(proc), _START_TIMEOUT)
        except TimeoutError:
            raise BenchError(f"{kind} server did not start within {_START_TIMEOUT:.0f}s") from None
        words = line.decode().split()
        if len(words) != 3 or words[0] != "PORT":
            with contextlib.suppress(TimeoutError):  # for its exit status in the message
                await asyncio.wait_for(proc.wait(), 1.0)
            raise BenchError(f"{kind} server failed to start (exit {proc.returncode}): {line!r}")
        report.machine[f"{kind}_server_loop"] = words[2]
        yield int(words[1]), proc.pid
    finally:
        await stop_process(proc)


async def _readline(proc: asyncio.subprocess.Process) -> bytes:
    return await proc.stdout.readline() if proc.stdout is not None else b""


def summarize(samples: Sequence[Sample]) -> list[CellResult]:
    """Medians over rounds per cell, and the medians of the per-round paired ratios."""
    return [
        CellResult(
            size,
            conc,
            _side(sides["bare"]),
            _side(sides["eblock"]),
            *_paired(sides, "bare", "eblock"),
        )
        for (size, conc), sides in _by_cell(samples, ("bare", "eblock")).items()
        if "bare" in sides and "eblock" in sides
    ]


def check_targets(
    cells: Sequence[CellResult], *, min_ratio: float = 0.80, max_added_p50_ms: float = 0.15
) -> list[Target]:
    """The issue's goals: >= 80 % of bare req/s at concurrency 32; <= 0.15 ms added p50 at 4 KB.

    Added p50 is judged at concurrency 1, where it is the cost of one request;
    under load p50 also holds the queueing that follows from the req/s ratio.
    """
    return _goals(cells, lambda _: "", min_ratio, max_added_p50_ms)


def summarize_security(samples: Sequence[Sample]) -> list[SecurityCell]:
    """Per cell and secured side: against the plain eblock side of the same rounds."""
    return _compared(samples, "eblock", tuple(SECURE_SPECS))


def summarize_sidecar(samples: Sequence[Sample]) -> list[SecurityCell]:
    """Per cell and pair of proxies: against the bare side (direct) of the same rounds."""
    return _compared(samples, "bare", tuple(PAIRS))


def _compared(samples: Sequence[Sample], base: str, kinds: tuple[str, ...]) -> list[SecurityCell]:
    """One cell per (cell, side of ``kinds``) against side ``base`` of the same rounds."""
    return [
        SecurityCell(
            kind, size, conc, _side(sides[base]), _side(sides[kind]), *_paired(sides, base, kind)
        )
        for (size, conc), sides in _by_cell(samples, (base, *kinds)).items()
        for kind in kinds
        if kind in sides and base in sides
    ]


def check_security_targets(
    cells: Sequence[SecurityCell], *, min_ratio: float = 0.85, max_added_p50_ms: float = 0.1
) -> list[Target]:
    """Issue 6's goals: <= 0.1 ms added p50 (keep-alive, c=1), <= 15 % req/s cost at c=32."""
    return _goals(cells, lambda c: f"{c.side} ", min_ratio, max_added_p50_ms)


def summarize_telemetry(samples: Sequence[Sample]) -> list[SecurityCell]:
    """Per cell: the eblock side (metrics) and ``telemetry`` (metrics + tracing 10 %) against
    ``telemetry-off`` (no per-request telemetry) of the same rounds."""
    return _compared(samples, "telemetry-off", ("eblock", "telemetry"))


def check_telemetry_targets(
    cells: Sequence[SecurityCell], *, min_ratio: float = 0.90, max_added_p50_ms: float = 0.05
) -> list[Target]:
    """Issue 7's goals for ``telemetry`` (tracing at 10 %) against ``telemetry-off``:
    <= 0.05 ms added p50 (4 KB, c=1), <= 10 % req/s cost (c=32)."""
    traced = [c for c in cells if c.side == "telemetry"]
    return _goals(traced, lambda _: "telemetry ", min_ratio, max_added_p50_ms)


def summarize_policies(samples: Sequence[Sample]) -> list[PolicyCell]:
    """Per cell: the policies side against the plain eblock side of the same rounds."""
    return [
        PolicyCell(
            size,
            conc,
            _side(sides["eblock"]),
            _side(sides["policies"]),
            *_paired(sides, "eblock", "policies"),
        )
        for (size, conc), sides in _by_cell(samples, ("eblock", "policies")).items()
        if "eblock" in sides and "policies" in sides
    ]


def check_policy_targets(
    cells: Sequence[PolicyCell], *, min_ratio: float = 0.90, max_added_p50_ms: float = 0.05
) -> list[Target]:
    """Issue 8's goals: <= 0.05 ms added p50 (4 KB, c=1), <= 10 % req/s cost (c=32)."""
    return _goals(cells, lambda _: "policies ", min_ratio, max_added_p50_ms)


_Cell = TypeVar("_Cell", CellResult, SecurityCell, PolicyCell)


def _goals(
    cells: Sequence[_Cell],
    prefix: Callable[[_Cell], str],
    min_ratio: float,
    max_added_p50_ms: float,
) -> list[Target]:
    """The req/s ratio at concurrency 32 and the added p50 at 4 KB, concurrency 1."""
    targets: list[Target] = []
    for c in cells:
        if c.concurrency == 32:
            ok = c.rps_ratio >= min_ratio
            name = f"{prefix(c)}req/s ratio"
            targets.append(Target(name, c.size, 32, c.rps_ratio, min_ratio, ok))
        if c.size == 4096 and c.concurrency == 1:
            ok = c.p50_added_ms <= max_added_p50_ms
            name = f"{prefix(c)}added p50 ms"
            targets.append(Target(name, 4096, 1, c.p50_added_ms, max_added_p50_ms, ok))
    return targets


def _by_cell(
    samples: Sequence[Sample], kinds: tuple[str, ...]
) -> dict[tuple[int, int], dict[str, list[Sample]]]:
    """The samples of ``kinds``, by (size, concurrency) and kind, in round order."""
    by_cell: dict[tuple[int, int], dict[str, list[Sample]]] = {}
    for s in samples:
        if s.kind in kinds:
            by_cell.setdefault((s.size, s.concurrency), {}).setdefault(s.kind, []).append(s)
    return by_cell


def _paired(sides: dict[str, list[Sample]], base: str, other: str) -> tuple[float, float, float]:
    """Medians of the per-round paired figures: req/s ratio, added p50 ms, p99 ratio."""
    pairs = list(zip(sides[base], sides[other], strict=True))
    return (
        _median([_ratio(o.rps, b.rps) for b, o in pairs]),
        _median([o.p50_ms - b.p50_ms for b, o in pairs]),
        _median([_ratio(o.p99_ms, b.p99_ms) for b, o in pairs]),
    )


def _side(samples: Sequence[Sample]) -> Side:
    return Side(
        rps=_median([s.rps for s in samples]),
        p50_ms=_median([s.p50_ms for s in samples]),
        p99_ms=_median([s.p99_ms for s in samples]),
        client_cpu_us=_median([s.client_cpu_us for s in samples]),
        server_cpu_us=_median([s.server_cpu_us for s in samples]),
        requests=sum(s.requests for s in samples),
        errors=sum(s.errors + s.warmup_errors for s in samples),
    )


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0
