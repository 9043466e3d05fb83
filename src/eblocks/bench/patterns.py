"""`eblocks bench patterns`: the same CPU-bound work through each pattern, side by side.

One mesh runs under a real local supervisor (one process per instance), with
one pattern per configuration, all fed the same task (`work.burn`, about
``work_ms`` of CPU):

- ``pipeline``:           a one-stage pipeline (one instance: the baseline)
- ``manager-worker xN``:  a manager and N worker instances (concurrency 1 each)
- ``divide-conquer``:     the task split into ``parts`` parts over 2 workers, joined in order

Each round measures every configuration back to back (closed loop,
``concurrency`` tasks in flight, after a warm-up), the order rotating from
round to round; results are medians over rounds. The *ideal* of a
configuration is ``min(workers, cores) / cpu_per_task``, the CPU time per
task measured in this process, so ``efficiency = throughput / ideal``.

Last, the *reaction*: a pattern autoscaled between 1 and 2 workers idles at 1;
a load step starts, and the time until the second worker is published ready
is measured (also as the manager reports it), once per round.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from eblocks.batch import percentile
from eblocks.bench.machine import describe
from eblocks.bench.overhead import BenchError
from eblocks.bench.work import calibrate
from eblocks.block import MeshClient
from eblocks.discovery import SupervisorResolver
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.runtime import StateDir, Supervisor
from eblocks.security import Auth
from eblocks.security.admin import AdminAccess
from eblocks.security.local import CLI_HOLDER
from eblocks.spec import MeshSpec, parse_spec

__all__ = [
    "ConfigResult",
    "PatternSettings",
    "PatternsReport",
    "Reaction",
    "Sample",
    "run_patterns",
]

AUTO = "auto"
_REACTION_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class PatternSettings:
    """What to measure; validated when built."""

    duration: float = 3.0
    warmup: float = 0.5
    rounds: int = 3
    work_ms: float = 20.0
    concurrency: int = 8
    workers: tuple[int, ...] = (1, 2)
    parts: int = 4
    reaction: bool = True

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValueError(f"duration must be > 0 seconds, got {self.duration}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0 seconds, got {self.warmup}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if not 0.1 <= self.work_ms <= 10_000:
            raise ValueError(f"work_ms must be within 0.1..10000, got {self.work_ms}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.workers or min(self.workers) < 1 or max(self.workers) > 32:
            raise ValueError(f"workers must be counts within 1..32, got {self.workers}")
        if not 1 <= self.parts <= 64:
            raise ValueError(f"parts must be within 1..64, got {self.parts}")


@dataclass(frozen=True, slots=True)
class Config:
    """One configuration: the pattern it calls and how many workers do the work."""

    name: str
    pattern: str
    workers: int


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured window of one configuration in one round."""

    config: str
    round: int
    position: int
    tasks: int
    errors: int
    error_kinds: dict[str, int]
    elapsed_s: float
    throughput: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class ConfigResult:
    """Medians over rounds of one configuration, and how it compares."""

    name: str
    pattern: str
    workers: int
    throughput: float  # tasks/s, median over rounds
    p50_ms: float
    p99_ms: float
    tasks: int
    errors: int
    ratio: float  # median of per-round throughput / pipeline's
    ideal: float  # min(workers, cores) / cpu_per_task
    efficiency: float  # throughput / ideal


@dataclass(frozen=True, slots=True)
class Reaction:
    """One load step on the autoscaled pattern."""

    round: int
    observed_s: float  # load start -> the second worker published ready
    reported_s: float | None  # the manager's own `last_scale_up_s`


@dataclass(slots=True)
class PatternsReport:
    created: str
    machine: dict[str, object]
    settings: dict[str, object]
    calibration: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    configs: list[ConfigResult] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.samples)

    @property
    def reaction_s(self) -> float | None:
        values = [r.observed_s for r in self.reactions]
        return statistics.median(values) if values else None


def configs(settings: PatternSettings) -> list[Config]:
    found = [Config("pipeline", "pipe", 1)]
    found += [Config(f"manager-worker x{n}", f"mw{n}", n) for n in settings.workers]
    found.append(Config(f"divide-conquer x2 ({settings.parts} parts)", "dc", 2))
    return found


def mesh_yaml(settings: PatternSettings) -> str:
    """The benchmark's mesh: one pattern per configuration, and the autoscaled one."""
    burn = "eblocks.bench.work:burn"
    lines = [
        "apiVersion: eblocks/v1",
        "mesh: bench-patterns",
        "defaults: {timeout: 120s, threads: 1, drain: 5s, ready_timeout: 90s}",
        "blocks:",
        f"  stage: {{handler: {burn}}}",
        "  split: {handler: eblocks.bench.work:split}",
        f"  part: {{handler: {burn}, replicas: 2}}",
        "  join: {handler: eblocks.bench.work:join}",
        "  boss-auto: {}",
        f"  w-auto: {{handler: {burn}}}",
    ]
    for n in settings.workers:
        lines += [f"  boss{n}: {{}}", f"  w{n}: {{handler: {burn}, replicas: {n}}}"]
    lines += ["patterns:", "  pipe: {pipeline: [stage]}"]
    for n in settings.workers:
        lines.append(
            f"  mw{n}: {{manager-worker: {{manager: boss{n}, worker: w{n}, concurrency: 1, "
            "queue: {max: 4096}}}"
        )
    lines.append(
        f"  dc: {{divide-conquer: {{divide: split, worker: part, combine: join, "
        f"parallel: {settings.parts}}}}}"
    )
    lines.append(
        f"  {AUTO}: {{manager-worker: {{manager: boss-auto, worker: w-auto, concurrency: 1, "
        "queue: {max: 4096}, workers: {min: 1, max: 2, target_inflight: 1, "
        "scale_down_delay: 1s}}}"
    )
    return "\n".join(lines) + "\n"


def run_patterns(
    settings: PatternSettings, progress: Callable[[str], None] | None = None
) -> PatternsReport:
    return asyncio.run(_run(settings, progress or (lambda _: None)))


async def _run(settings: PatternSettings, progress: Callable[[str], None]) -> PatternsReport:
    progress("calibrating the work")
    iters, cpu = calibrate(settings.work_ms)
    report = PatternsReport(
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=describe(client_loop="asyncio"),
        settings={
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "rounds": settings.rounds,
            "work_ms": settings.work_ms,
            "concurrency": settings.concurrency,
            "workers": list(settings.workers),
            "parts": settings.parts,
        },
        calibration={"iters": iters, "cpu_per_task_s": cpu},
    )
    with tempfile.TemporaryDirectory(prefix="eblocks-bench-patterns-") as tmp:
        root = Path(tmp)
        spec_path = root / "mesh.yaml"
        spec_path.write_text(mesh_yaml(settings), encoding="utf-8")
        spec = parse_spec(spec_path.read_text(), str(spec_path))
        state = StateDir(root / "state" / spec.mesh)
        supervisor = Supervisor(spec, spec_path, state)
        progress("starting the mesh")
        try:
            await supervisor.start()
            auth = Auth.for_cli(spec, state.path)  # the CLI's identity when mTLS is on
            resolver = SupervisorResolver(state.path)
            async with MeshClient(spec, resolver, source="bench", auth=auth) as client:
                await _measure_all(report, settings, client, iters, progress)
                if settings.reaction:
                    await _reactions(report, settings, spec, state, client, iters, progress)
        finally:
            progress("stopping the mesh")
            await supervisor.stop()
    report.machine["loadavg_end"] = list(os.getloadavg())
    report.configs = summarize(report.samples, configs(settings), cpu)
    return report


Caller = Callable[[int], Awaitable[None]]


def _caller(client: MeshClient, pattern: str, iters: int, parts: int) -> Caller:
    async def call(n: int) -> None:
        task = {"iters": iters, "seed": f"{pattern}-{n}", "parts": parts}
        msg = Message(orjson.dumps(task), {IDEMPOTENCY_HEADER: f"{pattern}-{n}"})
        reply = await client.call(pattern, msg)
        body = reply.json()
        if not isinstance(body, dict) or not ({"digest", "digests"} & body.keys()):
            raise BenchError(f"{pattern}: unexpected reply {reply.body[:100]!r}")

    return call


async def _measure_all(
    report: PatternsReport,
    settings: PatternSettings,
    client: MeshClient,
    iters: int,
    progress: Callable[[str], None],
) -> None:
    found = configs(settings)
    counter = iter(range(1 << 62))
    for rnd in range(settings.rounds):
        shift = rnd % len(found)
        for position, config in enumerate(found[shift:] + found[:shift]):
            progress(f"round {rnd + 1}/{settings.rounds}: {config.name}")
            call = _caller(client, config.pattern, iters, settings.parts)
            await _window(call, counter, settings.concurrency, settings.warmup)
            lat, errors, elapsed = await _window(
                call, counter, settings.concurrency, settings.duration
            )
            ms = [x * 1000 for x in lat]
            report.samples.append(
                Sample(
                    config=config.name,
                    round=rnd,
                    position=position,
                    tasks=len(ms),
                    errors=sum(errors.values()),
                    error_kinds=dict(errors),
                    elapsed_s=elapsed,
                    throughput=len(ms) / elapsed if elapsed > 0 else 0.0,
                    p50_ms=percentile(ms, 50),
                    p99_ms=percentile(ms, 99),
                )
            )


async def _window(
    call: Caller, counter: Any, concurrency: int, seconds: float
) -> tuple[list[float], collections.Counter[str], float]:
    """``concurrency`` closed-loop callers for ``seconds``; in-flight tasks are waited for."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    clock = time.perf_counter
    start = clock()
    stop_at = start + seconds

    async def one() -> None:
        while (begun := clock()) < stop_at:
            try:
                await call(next(counter))
            except Exception as exc:  # every failure is counted and reported, never hidden
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)
                continue
            latencies.append(clock() - begun)

    if seconds > 0:
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return latencies, errors, clock() - start


async def _reactions(
    report: PatternsReport,
    settings: PatternSettings,
    spec: MeshSpec,
    state: StateDir,
    client: MeshClient,
    iters: int,
    progress: Callable[[str], None],
) -> None:
    call = _caller(client, AUTO, iters, settings.parts)
    counter = iter(range(1 << 62))
    access = AdminAccess.of(spec, state.path, CLI_HOLDER)  # /v1/pools needs a mesh certificate
    async with access.session(aiohttp.ClientTimeout(total=2.0)) as http:
        for rnd in range(settings.rounds):
            progress(f"reaction {rnd + 1}/{settings.rounds}: waiting for the pool to idle at 1")
            await _until(lambda: _pool_size(state) == (1, 1), "the autoscaled pool at 1 worker")
            progress(f"reaction {rnd + 1}/{settings.rounds}: load step")
            stop = asyncio.Event()
            failures: list[Exception] = []
            began = time.perf_counter()
            load = asyncio.create_task(
                _load_until(call, counter, settings.concurrency, stop, failures)
            )
            try:
                await _until(_served_or_failed(client, failures), "a second worker to serve")
                observed = time.perf_counter() - began
            finally:
                stop.set()
                await load
            if failures:
                raise BenchError(
                    f"{len(failures)} task(s) failed during the load step, first: {failures[0]}"
                )
            reported = await _reported(http, access, state)
            report.reactions.append(Reaction(rnd, observed, reported))


def _served_or_failed(client: MeshClient, failures: list[Exception]) -> Callable[[], bool]:
    return lambda: len(client.endpoints("w-auto")) >= 2 or bool(failures)


async def _load_until(
    call: Caller, counter: Any, concurrency: int, stop: asyncio.Event, failures: list[Exception]
) -> None:
    async def one() -> None:
        while not stop.is_set():
            try:
                await call(next(counter))
            except Exception as exc:  # kept; the caller turns them into a BenchError
                failures.append(exc)
                await asyncio.sleep(0.01)

    await asyncio.gather(*(one() for _ in range(concurrency)))


def _pool_size(state: StateDir) -> tuple[int, int] | None:
    try:
        pool = orjson.loads(state.pools.read_bytes())["pools"]["w-auto"]
    except (OSError, ValueError, KeyError):
        return None
    return int(pool["running"]), int(pool["ready"])


async def _reported(
    http: aiohttp.ClientSession, access: AdminAccess, state: StateDir
) -> float | None:
    """The manager's own scale-up time (it sees the worker a tick after the bench may)."""
    rows = orjson.loads(state.state.read_bytes()).get("instances", [])
    (boss,) = [r for r in rows if r["block"] == "boss-auto"]
    url = access.row_url(boss, "/v1/pools")
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        async with http.get(url) as resp:
            body = await resp.json()
        scaling = body["pools"][0].get("autoscale") or {}
        if scaling.get("scaling_up_for_s") is None and scaling.get("last_scale_up_s"):
            return float(scaling["last_scale_up_s"])
        await asyncio.sleep(0.05)
    return None


async def _until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + _REACTION_TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {_REACTION_TIMEOUT:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


def summarize(samples: Sequence[Sample], found: Sequence[Config], cpu: float) -> list[ConfigResult]:
    """Medians over rounds per configuration; ratios against the pipeline of the same round."""
    cores = os.cpu_count() or 1
    base = {s.round: s.throughput for s in samples if s.config == "pipeline"}
    results = []
    for config in found:
        mine = [s for s in samples if s.config == config.name]
        throughput = _median([s.throughput for s in mine])
        ideal = min(config.workers, cores) / cpu if cpu > 0 else 0.0
        ratios = [s.throughput / base[s.round] for s in mine if base.get(s.round)]
        results.append(
            ConfigResult(
                name=config.name,
                pattern=config.pattern,
                workers=config.workers,
                throughput=throughput,
                p50_ms=_median([s.p50_ms for s in mine]),
                p99_ms=_median([s.p99_ms for s in mine]),
                tasks=sum(s.tasks for s in mine),
                errors=sum(s.errors for s in mine),
                ratio=_median(ratios),
                ideal=ideal,
                efficiency=throughput / ideal if ideal > 0 else 0.0,
            )
        )
    return results


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0
