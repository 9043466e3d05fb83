"""`submit_files`: idempotency keys, retries of transient failures, 429 back-off, reports."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from eblocks.batch import BatchReport, idempotency_key, percentile, submit_files
from eblocks.errors import ConnectError, MeshError, NoRouteError, UpstreamError
from eblocks.message import IDEMPOTENCY_HEADER, NAME_HEADER, Message
from eblocks.spec.models import RetryPolicy
from eblocks.testing import FakeClock

POLICY = RetryPolicy(attempts=4, backoff=0.1, max_backoff=0.4)


class ScriptedClient:
    """Answers each call with the next outcome for that document (then echoes)."""

    def __init__(self, script: dict[bytes, list[MeshError]]) -> None:
        self.script = script
        self.calls: list[tuple[str, Message]] = []

    async def call(self, target: str, msg: Message, *, deadline: float | None = None) -> Message:
        self.calls.append((target, msg))
        pending = self.script.get(msg.body, [])
        if pending:
            raise pending.pop(0)
        return Message(msg.body.upper())


def _docs(tmp_path: Path, *bodies: bytes) -> list[Path]:
    paths = []
    for index, body in enumerate(bodies):
        path = tmp_path / f"doc{index}.txt"
        path.write_bytes(body)
        paths.append(path)
    return paths


async def _submit(client: ScriptedClient, files: list[Path], clock: FakeClock) -> BatchReport:
    return await submit_files(
        client, "ingest", files, retry=POLICY, rng=random.Random(1), clock=clock
    )


def _upstream(status: int, retry_after: float | None = None) -> UpstreamError:
    reason = "overloaded" if status in (429, 503) else "handler"
    return UpstreamError("no", status=status, reason=reason, origin="w", retry_after=retry_after)


async def test_every_document_is_sent_once_with_a_stable_key(tmp_path: Path) -> None:
    files = _docs(tmp_path, b"a", b"b", b"c")
    client, clock = ScriptedClient({}), FakeClock()
    report = await submit_files(client, "ingest", files, clock=clock)
    assert report.ok == 3
    assert report.failures == []
    assert len(report.latencies) == 3
    keys = sorted(m.headers[IDEMPOTENCY_HEADER] for _, m in client.calls)
    assert keys == sorted(idempotency_key(p.name, p.read_bytes()) for p in files)
    assert clock.sleeps == []


async def test_each_document_carries_its_file_name_as_a_header_safe_value(
    tmp_path: Path,
) -> None:
    files = [tmp_path / "plain.txt", tmp_path / "résumé 2026.txt"]
    for path in files:
        path.write_bytes(b"x" + path.name.encode())
    client = ScriptedClient({})
    await submit_files(client, "ingest", files, clock=FakeClock())
    names = sorted(m.headers[NAME_HEADER] for _, m in client.calls)
    assert names == ["plain.txt", "r%C3%A9sum%C3%A9 2026.txt"]
    assert all(n.isascii() for n in names)


def test_idempotency_key_depends_on_name_and_content() -> None:
    assert idempotency_key("a", b"x") == idempotency_key("a", b"x")
    assert idempotency_key("a", b"x") != idempotency_key("b", b"x")
    assert idempotency_key("a", b"x") != idempotency_key("a", b"y")


@pytest.mark.parametrize(
    "error",
    [lambda: ConnectError("down"), lambda: _upstream(503)],
    ids=["connect", "503"],
)
async def test_transient_failures_are_retried_with_backoff(
    tmp_path: Path, error: Callable[[], MeshError]
) -> None:
    files = _docs(tmp_path, b"a")
    client, clock = ScriptedClient({b"a": [error(), error()]}), FakeClock()
    report = await _submit(client, files, clock)
    assert report.ok == 1
    assert len(client.calls) == 3
    assert len(clock.sleeps) == 2
    assert all(0 < s <= POLICY.max_backoff for s in clock.sleeps)


async def test_a_full_queue_is_waited_out_for_its_retry_after(tmp_path: Path) -> None:
    files = _docs(tmp_path, b"a")
    client, clock = ScriptedClient({b"a": [_upstream(429, retry_after=2.0)]}), FakeClock()
    report = await _submit(client, files, clock)
    assert report.ok == 1
    assert clock.sleeps == [2.0]


async def test_a_handler_error_is_not_retried_and_is_reported(tmp_path: Path) -> None:
    files = _docs(tmp_path, b"a", b"b")
    client, clock = ScriptedClient({b"b": [_upstream(500)]}), FakeClock()
    report = await _submit(client, files, clock)
    assert report.ok == 1
    (failure,) = report.failures
    assert (failure.name, failure.reason, failure.origin) == ("doc1.txt", "handler", "w")
    assert len(client.calls) == 2


async def test_gives_up_after_the_policy_attempts(tmp_path: Path) -> None:
    files = _docs(tmp_path, b"a")
    errors: list[MeshError] = [ConnectError("down", origin="w") for _ in range(10)]
    client, clock = ScriptedClient({b"a": errors}), FakeClock()
    report = await _submit(client, files, clock)
    assert report.ok == 0
    assert [f.reason for f in report.failures] == ["connect"]
    assert len(client.calls) == POLICY.attempts


async def test_a_failure_the_mesh_already_retried_is_not_tried_again(tmp_path: Path) -> None:
    files = _docs(tmp_path, b"a")
    retried = _upstream(503)
    retried.detail["retried"] = 3  # a manager's, or the first hop's, tries are spent
    client, clock = ScriptedClient({b"a": [retried, _upstream(503)]}), FakeClock()
    report = await _submit(client, files, clock)
    assert report.ok == 0
    assert len(client.calls) == 1
    assert clock.sleeps == []


async def test_a_target_the_mesh_does_not_have_fails_at_once(tmp_path: Path) -> None:
    files = _docs(tmp_path, b"a", b"b")
    unknown: list[MeshError] = [
        NoRouteError("no block or pattern named 'ingset'") for _ in range(20)
    ]
    client, clock = ScriptedClient({b"a": unknown[:10], b"b": unknown[10:]}), FakeClock()
    report = await _submit(client, files, clock)
    assert [f.reason for f in report.failures] == ["no_route", "no_route"]
    assert len(client.calls) == 2  # one each: a name does not come into being by waiting
    assert clock.sleeps == []


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([], 50) == 0.0
