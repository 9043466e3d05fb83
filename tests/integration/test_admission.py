"""A block's own policies in a real mesh: rate limit, fault aborts and bulkhead, counted.

`eblocks up` runs three blocks as real processes, each with one policy; this
test calls them directly over HTTP from many concurrent requests and counts
the answers. Nothing here asserts a duration: the window of the rate test is
whatever the run took, and what is compared is how many requests were
admitted against ``rate x window + burst``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import aiohttp
import pytest

from .helpers import Sandbox
from .test_metrics import check_with_promtool, samples, scrape

pytestmark = pytest.mark.integration

RATE, BURST = 100, 50
ABORT_PERCENT = 20

HANDLERS = """\
import asyncio

from eblocks import Message


def echo(msg: Message) -> bytes:
    return msg.body


async def slow(msg: Message) -> bytes:
    await asyncio.sleep(float(msg.text() or "0"))
    return b"done"
"""

SPEC = f"""\
apiVersion: eblocks/v1
mesh: admission
defaults: {{timeout: 30s, drain: 1s}}
security: {{mtls: disable}}  # the test calls the blocks itself, in plain HTTP
blocks:
  limited: {{handler: handlers:echo}}
  chaos: {{handler: handlers:echo}}
  narrow: {{handler: handlers:slow}}
policies:
  blocks:
    limited:
      rate_limits: [{{rate: {RATE}, burst: {BURST}}}]
    chaos:
      faults: [{{abort: {{percent: {ABORT_PERCENT}, status: 503}}}}]
    narrow:
      bulkhead: {{max_concurrent: 2}}
"""


def rows(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {r["block"]: r for r in sandbox.instances("admission")}


def url(row: dict[str, Any]) -> str:
    return f"http://{row['host']}:{row['port']}/"


async def flood(
    target: str, seconds: float, concurrency: int
) -> tuple[collections.Counter[str], float]:
    """Call ``target`` as fast as ``concurrency`` workers can for ``seconds``."""
    outcomes: collections.Counter[str] = collections.Counter()
    async with aiohttp.ClientSession() as session:
        began = time.monotonic()
        stop = began + seconds

        async def worker() -> None:
            while time.monotonic() < stop:
                async with session.post(target, data=b"x") as resp:
                    await resp.read()
                    outcomes[f"{resp.status} {resp.headers.get('x-eblocks-error', '')}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return outcomes, time.monotonic() - began


async def count(target: str, requests: int, concurrency: int) -> collections.Counter[str]:
    outcomes: collections.Counter[str] = collections.Counter()
    todo = iter(range(requests))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in todo:
                async with session.post(target, data=b"x") as resp:
                    await resp.read()
                    origin = resp.headers.get("x-eblocks-origin", "")
                    outcomes[
                        f"{resp.status} {resp.headers.get('x-eblocks-error', '')} {origin}"
                    ] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def bulkhead_refusal(target: str) -> tuple[int, str, bool, list[int]]:
    """Fill the bulkhead with two slow requests, then ask a third time."""
    async with aiohttp.ClientSession() as session:

        async def call(seconds: str) -> int:
            async with session.post(target, data=seconds.encode()) as resp:
                await resp.read()
                return resp.status

        held = [asyncio.ensure_future(call("4")) for _ in range(2)]
        await asyncio.sleep(
            1.0
        )  # let both reach the handler (the readiness of the two is checked below)
        async with session.post(target, data=b"0") as resp:
            refused = (resp.status, resp.headers.get("x-eblocks-error", ""))
        still_held = not any(task.done() for task in held)
        return refused[0], refused[1], still_held, list(await asyncio.gather(*held))


def test_rate_limit_fault_aborts_and_bulkhead_in_real_processes(sandbox: Sandbox) -> None:
    sandbox.write("handlers.py", HANDLERS)
    up = sandbox.up(sandbox.write("mesh.yaml", SPEC))
    assert up.returncode == 0, str(up)
    found = rows(sandbox)  # `up` returns once every instance is ready
    assert sorted(found) == ["chaos", "limited", "narrow"], found

    # the rate limiter admits rate x window + burst, within 5 %
    outcomes, window = asyncio.run(flood(url(found["limited"]), 4.0, 8))
    admitted, refused = outcomes["200 "], outcomes["429 rate_limited"]
    assert admitted + refused == sum(outcomes.values()), outcomes
    assert refused > admitted, outcomes  # the load was far above the rate
    expected = RATE * window + BURST
    assert abs(admitted - expected) <= 0.05 * expected, (admitted, expected, window)
    text = scrape(sandbox, "admission", found["limited"])
    check_with_promtool(text)
    denials = [
        v
        for name, labels, v in samples(text)
        if name == "eblocks_policy_denials_total"
        and labels == {"block": "limited", "reason": "rate_limited", "rule": "rate_limits[0]"}
    ]
    assert denials == [refused]

    # injected aborts appear at their rate, each saying what it is and who did it
    outcomes = asyncio.run(count(url(found["chaos"]), 2000, 8))
    assert set(outcomes) == {"200  ", "503 fault_injected chaos"}, outcomes
    share = 100 * outcomes["503 fault_injected chaos"] / 2000
    assert abs(share - ABORT_PERCENT) <= 3, outcomes

    # a full bulkhead answers 503 overloaded while its two requests are still inside
    status, reason, still_held, held = asyncio.run(bulkhead_refusal(url(found["narrow"])))
    assert (status, reason) == (503, "overloaded")
    assert still_held
    assert held == [200, 200]
