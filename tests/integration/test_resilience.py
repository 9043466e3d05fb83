"""Retries, the retry budget, the breaker and deadlines in a real mesh (counts, not timings).

A ``driver`` block (the test posts orders to it) calls the others one request
at a time, each with its own idempotency key, and reports how each call ended;
the called blocks count every try they receive in files of the sandbox.
``flaky`` has 3 instances, of which one fails while its marker file exists;
``down`` always fails; ``slow`` sleeps far longer than its timeout and records
whether it was cancelled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import Sandbox, wait_for

pytestmark = pytest.mark.integration

HANDLERS = '''\
"""Blocks that fail, count and sleep on purpose."""

import asyncio
import json
from pathlib import Path

from eblocks import Message
from eblocks.errors import MeshError, UpstreamError

DIR = Path({work!r})


def _mark(name: str) -> None:
    with open(DIR / name, "a", encoding="utf-8") as out:
        out.write("x\\n")


async def flaky(msg, ctx):
    _mark(f"tries-{{ctx.instance}}")
    if (DIR / f"fail-{{ctx.instance}}").exists():
        raise RuntimeError(f"{{ctx.instance}} fails on purpose")
    return b"ok"


async def down(msg, ctx):
    _mark("tries-down")
    raise RuntimeError("down on purpose")


async def slow(msg, ctx):
    _mark("slow-started")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        _mark("slow-cancelled")
        raise
    _mark("slow-done")
    return b"late"


async def driver(msg, ctx):
    order = json.loads(msg.body)
    outcomes, exhausted = {{}}, 0
    for i in range(order["n"]):
        key = f"{{order['tag']}}-{{i}}"
        try:
            await ctx.call(order["target"], Message(b"x", {{"idempotency-key": key}}))
            reason = "ok"
        except MeshError as exc:
            reason = exc.upstream_reason if isinstance(exc, UpstreamError) else exc.reason
            exhausted += exc.detail.get("retry_budget") == "exhausted"
        outcomes[reason] = outcomes.get(reason, 0) + 1
    return json.dumps({{"outcomes": outcomes, "budget_exhausted": exhausted}}).encode()
'''

SPEC = """\
apiVersion: eblocks/v1
mesh: resilient
defaults: {timeout: 10s, drain: 1s}
blocks:
  driver: {handler: resil:driver, timeout: 60s, security: {mtls: permissive}}  # the test: plain
  flaky:
    handler: resil:flaky
    replicas: 3
    retries: {attempts: 3, backoff: 1ms, "on": [500]}
  down:
    handler: resil:down
    replicas: 2
    retries: {attempts: 3, backoff: 1ms, "on": [500]}
  slow: {handler: resil:slow, timeout: 300ms}
policies:
  blocks:
    flaky:
      outlier:
        consecutive_failures: 3
        success_rate_stdev: null
        base_ejection: 1s
        max_ejected_percent: 50
    down:
      retry_budget: {ratio: 0.2, min_per_second: 0, window: 60s}
"""


class Mesh:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.work = sandbox.work
        rows = sandbox.instances("resilient")
        self.driver = next(r for r in rows if r["block"] == "driver")
        self.flaky = sorted(r["instance"] for r in rows if r["block"] == "flaky")

    def drive(self, target: str, n: int, tag: str) -> dict[str, Any]:
        """POST an order to the driver (plaintext, straight to its port): how the calls ended."""
        order = json.dumps({"target": target, "n": n, "tag": tag}).encode()
        url = f"http://{self.driver['host']}:{self.driver['port']}/"
        with urllib.request.urlopen(url, data=order, timeout=60.0) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def count(self, name: str) -> int:
        path = self.work / name
        return len(path.read_text().splitlines()) if path.exists() else 0

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.sandbox.admin_ok("resilient", self.driver, "/metrics").decode()
        promtool = shutil.which("promtool")  # Debian `prometheus`, from scripts/system-deps.sh
        assert promtool is not None, "promtool missing: run scripts/system-deps.sh"
        done = subprocess.run(
            [promtool, "check", "metrics"],
            input=text.encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        assert done.stdout.strip() == b"", done.stdout.decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        want = tuple(sorted({"src_block": "driver", **labels}.items()))
        return self.metrics().get((name, want), 0.0)

    def breaker(self, instance: str, state: str) -> float:
        return self.metric(
            "eblocks_endpoint_breaker_state", dst_block="flaky", endpoint=instance, state=state
        )


@pytest.fixture
def mesh(sandbox: Sandbox) -> Mesh:
    sandbox.write("resil.py", HANDLERS.format(work=str(sandbox.work)))
    up = sandbox.up(sandbox.write("mesh.yaml", SPEC))
    assert up.returncode == 0, str(up)
    return Mesh(sandbox)


def test_retries_breaker_budget_and_deadlines(mesh: Mesh) -> None:
    bad = mesh.flaky[0]
    (mesh.work / f"fail-{bad}").touch()

    # One instance of three fails: retries recover every request; its breaker opens.
    result = mesh.drive("flaky", 30, "a")
    assert result["outcomes"] == {"ok": 30}, result
    ejections = mesh.metric("eblocks_outlier_ejections_total", dst_block="flaky")
    assert ejections >= 1
    # 3 failures in a row ejected it; every later try on it was a probe that failed
    assert mesh.count(f"tries-{bad}") == 3 + (ejections - 1)
    assert sum(mesh.count(f"tries-{good}") for good in mesh.flaky[1:]) >= 30
    assert mesh.breaker(bad, "closed") == 0.0
    # each failed try on it was retried once, on another instance
    retries = mesh.metric("eblocks_retries_total", dst_block="flaky", route="direct")
    assert retries == mesh.count(f"tries-{bad}")

    # After the ejection a probe goes through (half-open); it fails: ejected again.
    ejected = mesh.metric("eblocks_outlier_ejections_total", dst_block="flaky")
    seen = mesh.count(f"tries-{bad}")

    def reejected() -> bool:
        assert mesh.drive("flaky", 1, "b")["outcomes"] == {"ok": 1}
        return mesh.metric("eblocks_outlier_ejections_total", dst_block="flaky") > ejected

    wait_for(reejected, timeout=20, what="a failed probe to eject flaky-0 again", interval=0.1)
    assert mesh.count(f"tries-{bad}") > seen  # the probe
    ejections = mesh.metric("eblocks_outlier_ejections_total", dst_block="flaky")
    assert mesh.count(f"tries-{bad}") == 3 + (ejections - 1)  # one try per probe
    assert mesh.breaker(bad, "open") == 1.0

    # Healthy again: the next probe succeeds and the breaker closes; traffic comes back.
    (mesh.work / f"fail-{bad}").unlink()

    def closed() -> bool:
        assert mesh.drive("flaky", 1, "c")["outcomes"] == {"ok": 1}
        return mesh.breaker(bad, "closed") == 1.0

    wait_for(closed, timeout=20, what="the probe to close flaky-0's breaker", interval=0.1)
    before = mesh.count(f"tries-{bad}")
    assert mesh.drive("flaky", 30, "d")["outcomes"] == {"ok": 30}
    assert mesh.count(f"tries-{bad}") - before >= 5  # round robin: about a third of 30

    # A full outage: retries are capped at the budget's ratio (0.2 x 100 first tries).
    result = mesh.drive("down", 100, "e")
    assert result["outcomes"] == {"handler": 100}, result
    assert mesh.count("tries-down") == 100 + 20  # without the budget: 300
    assert result["budget_exhausted"] == 100  # each call wanted 2 retries, got 1 at most
    assert mesh.metric("eblocks_retry_budget_exhausted_total", dst_block="down") == 100

    # The deadline stops the downstream work: slow's handler is cancelled, never finishes.
    result = mesh.drive("slow", 1, "f")
    assert result["outcomes"] == {"timeout": 1}, result
    wait_for(lambda: mesh.count("slow-cancelled") >= 1, timeout=10, what="slow's cancellation")
    assert mesh.count("slow-started") == mesh.count("slow-cancelled")
    assert not (mesh.work / "slow-done").exists()
