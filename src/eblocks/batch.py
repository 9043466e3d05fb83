"""Push many documents through a pattern: bounded concurrency, idempotent retries.

Each document gets an idempotency key derived from its name and content, so a
retry after a crash anywhere in the pipeline never duplicates an effect. A
document that still fails after its retries is reported with the reason,
never dropped. A 429 (a full manager queue) is retried after its ``retry-after``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from eblocks._types import Clock, SystemClock
from eblocks.errors import MeshError, MeshTimeoutError, UpstreamError
from eblocks.layers.retry import already_retried, is_retryable
from eblocks.message import IDEMPOTENCY_HEADER, NAME_HEADER, Message
from eblocks.spec.models import RetryPolicy

__all__ = [
    "BatchReport",
    "Caller",
    "Failure",
    "idempotency_key",
    "percentile",
    "submit",
    "submit_files",
]

T = TypeVar("T")

# Submit rides out an instance restart (a few seconds): more tries, longer backoff.
SUBMIT_RETRY = RetryPolicy(attempts=8, backoff=0.2, max_backoff=3.0)


class Caller(Protocol):
    """What submit needs of a client: `MeshClient` is one."""

    async def call(
        self, target: str, msg: Message, *, deadline: float | None = None
    ) -> Message: ...


@dataclass(frozen=True, slots=True)
class Failure:
    name: str
    reason: str
    origin: str
    message: str


@dataclass
class BatchReport:
    ok: int = 0
    failures: list[Failure] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return (self.ok + len(self.failures)) / self.elapsed if self.elapsed > 0 else 0.0


def idempotency_key(name: str, body: bytes) -> str:
    """Stable per document: the same file always gets the same key."""
    digest = hashlib.sha256(name.encode() + b"\0" + body).hexdigest()
    return digest[:32]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


async def submit_files(
    client: Caller,
    target: str,
    files: Sequence[Path],
    *,
    concurrency: int = 8,
    retry: RetryPolicy = SUBMIT_RETRY,
    on_result: Callable[[Path, Message | None], None] | None = None,
    rng: random.Random | None = None,
    clock: Clock | None = None,
) -> BatchReport:
    """Send every file to ``target``; ``on_result`` sees each reply (None on failure).

    Each file is read only when its turn comes, so a folder of any size fits.
    """

    async def load(path: Path) -> Message:
        body = await asyncio.to_thread(path.read_bytes)
        key = idempotency_key(path.name, body)
        return Message(body, {IDEMPOTENCY_HEADER: key, NAME_HEADER: _header_safe(path.name)})

    return await submit(
        client,
        target,
        files,
        load=load,
        name=lambda path: path.name,
        concurrency=concurrency,
        retry=retry,
        on_result=on_result,
        rng=rng,
        clock=clock,
    )


async def submit(
    client: Caller,
    target: str,
    items: Sequence[T],
    *,
    load: Callable[[T], Awaitable[Message]],
    name: Callable[[T], str],
    concurrency: int = 8,
    retry: RetryPolicy = SUBMIT_RETRY,
    on_result: Callable[[T, Message | None], None] | None = None,
    rng: random.Random | None = None,
    clock: Clock | None = None,
) -> BatchReport:
    """Send the message ``load(item)`` of every item to ``target``, ``concurrency`` at a time.

    Transient failures are retried under ``retry`` (a 429 after its ``retry-after``),
    but not one the mesh already retried (`eblocks.layers.retry.already_retried`);
    a message should carry an idempotency key, so a retry never duplicates an
    effect. ``name(item)`` names an item in the report's failures.
    """
    report = BatchReport()
    gate = asyncio.Semaphore(concurrency)
    rng = rng or random.Random()
    clock = clock or SystemClock()
    start = time.perf_counter()

    async def one(item: T) -> None:
        async with gate:
            msg = await load(item)
            began = time.perf_counter()
            try:
                reply = await _with_retries(client, target, msg, retry, rng, clock)
            except MeshError as exc:
                report.failures.append(_failure(name(item), exc))
                if on_result:
                    on_result(item, None)
                return
            report.latencies.append(time.perf_counter() - began)
            report.ok += 1
            if on_result:
                on_result(item, reply)

    await asyncio.gather(*(one(item) for item in items))
    report.elapsed = time.perf_counter() - start
    report.failures.sort(key=lambda f: f.name)
    return report


async def _with_retries(
    client: Caller,
    target: str,
    msg: Message,
    policy: RetryPolicy,
    rng: random.Random,
    clock: Clock,
) -> Message:
    attempt = 1
    while True:
        try:
            return await client.call(target, msg)
        except MeshError as exc:
            upstream = exc if isinstance(exc, UpstreamError) else None
            shed = upstream is not None and upstream.upstream_status == 429
            transient = shed or is_retryable(exc, policy) or isinstance(exc, MeshTimeoutError)
            if attempt >= policy.attempts or not transient or already_retried(exc):
                raise
            ceiling = min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1))
            delay = rng.uniform(ceiling / 2, ceiling)
            if shed and upstream is not None:  # a full queue said when to come back
                delay = max(delay, upstream.retry_after or 0.0)
            await clock.sleep(delay)
            attempt += 1


def _header_safe(name: str) -> str:
    """A file name as a header value: non-ASCII and control characters percent-encoded."""
    return urllib.parse.quote(name, safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")


def _failure(name: str, exc: MeshError) -> Failure:
    reason = exc.upstream_reason if isinstance(exc, UpstreamError) else exc.reason
    return Failure(name, reason, exc.origin, exc.message)
