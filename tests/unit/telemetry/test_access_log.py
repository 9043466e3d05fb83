"""The access log: one parseable JSON line per request, written off the event loop, bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from eblocks import Block, Context, MeshClient, Message
from eblocks.message import IDEMPOTENCY_HEADER, REQUEST_ID_HEADER
from eblocks.spec import parse_spec
from eblocks.telemetry import AccessLog, Telemetry
from eblocks.testing import StaticResolver

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults: {access_log: true}
blocks:
  front: {handler: "tests:front"}
  back: {handler: "tests:back", access_log: false}
""",
    "unit.yaml",
)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
FIELDS = {
    "time",
    "direction",
    "source",
    "destination",
    "route",
    "status",
    "duration_ms",
    "bytes_in",
    "bytes_out",
    "retries",
    "error",
    "request_id",
    "trace_id",
    "instance",
}


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_access_log_is_per_block_in_the_spec() -> None:
    assert SPEC.settings("front").access_log is True
    assert SPEC.settings("back").access_log is False


async def test_lines_of_inbound_and_outbound_requests(tmp_path: Path) -> None:
    async def back(msg: Message) -> bytes:
        if msg.body == b"fail":
            raise ValueError("no")
        return msg.body * 2

    async def front(msg: Message, ctx: Context) -> Message:
        return await ctx.call("back", msg)

    resolver = StaticResolver()
    back_block = Block("back", back)
    await back_block.start("127.0.0.1", 0)
    resolver.set("back", [f"127.0.0.1:{back_block.port}"])
    log = AccessLog(tmp_path / "front.access.jsonl", interval=0.05)
    tel = Telemetry("front", "front-0", access_log=log)
    client = MeshClient(SPEC, resolver, source="front", telemetry=tel)
    front_block = Block.in_mesh("front", front, app=None, client=client, instance="front-0")
    await front_block.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{front_block.port}/"
            headers = {
                REQUEST_ID_HEADER: "req-1",
                IDEMPOTENCY_HEADER: "k1",
                "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
            }
            async with session.post(url, data=b"abc", headers=headers) as resp:
                assert await resp.read() == b"abcabc"
            async with session.post(url, data=b"fail", headers={REQUEST_ID_HEADER: "req-2"}) as r:
                assert r.status == 500
    finally:
        await front_block.stop()  # flushes the log
        await back_block.stop()
    lines = read_lines(tmp_path / "front.access.jsonl")
    assert len(lines) == 4  # two inbound, two outbound
    assert all(set(line) == FIELDS for line in lines)
    by = {(line["direction"], line["request_id"]): line for line in lines}
    inbound = by["inbound", "req-1"]
    assert inbound["source"] == "external"
    assert inbound["destination"] == "front"
    assert (inbound["status"], inbound["bytes_in"], inbound["bytes_out"]) == (200, 3, 6)
    assert inbound["trace_id"] == TRACE
    assert inbound["route"] == "direct"
    outbound = by["outbound", "req-1"]
    assert (outbound["source"], outbound["destination"]) == ("front", "back")
    assert (outbound["status"], outbound["bytes_in"], outbound["bytes_out"]) == (200, 3, 6)
    assert outbound["retries"] == 0
    failed = by["inbound", "req-2"]
    assert (failed["status"], failed["error"]) == (500, "handler")
    assert by["outbound", "req-2"]["error"] == "handler"
    assert inbound["duration_ms"] >= outbound["duration_ms"] >= 0


async def test_write_never_blocks_and_drops_past_the_bound(tmp_path: Path) -> None:
    log = AccessLog(tmp_path / "a.jsonl", interval=10.0, batch=5, max_pending=5)
    for i in range(8):  # the writer task is not even started: nothing can be written yet
        log.write({"n": i})
    assert log.dropped == 3
    await log.start()
    await log.aclose()
    assert [line["n"] for line in read_lines(tmp_path / "a.jsonl")] == [0, 1, 2, 3, 4]
    assert log.written == 5


async def test_a_full_batch_is_written_before_the_interval(tmp_path: Path) -> None:
    log = AccessLog(tmp_path / "b.jsonl", interval=60.0, batch=3)
    await log.start()
    try:
        for i in range(3):
            log.write({"n": i})
        for _ in range(400):  # bounded: the writer wakes at once for a full batch
            if log.written == 3:
                break
            await asyncio.sleep(0.005)
        assert log.written == 3
    finally:
        await log.aclose()


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="interval"):
        AccessLog(Path("x"), interval=0)
    with pytest.raises(ValueError, match="batch"):
        AccessLog(Path("x"), batch=10, max_pending=5)
