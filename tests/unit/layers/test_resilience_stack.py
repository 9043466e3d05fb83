"""The client stack with live policies: per-try timeouts, ejection, budget and their metrics."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from eblocks._types import Call, SystemClock
from eblocks.block.inbound import inbound_deadline
from eblocks.block.stack import client_stack
from eblocks.errors import CircuitOpenError, ConnectError, MeshTimeoutError
from eblocks.message import IDEMPOTENCY_HEADER, Message
from eblocks.policies import LivePolicies
from eblocks.spec.models import Defaults, RetryPolicy, resolve_settings
from eblocks.spec.policies import Policies, Route
from eblocks.telemetry.core import Telemetry
from eblocks.telemetry.metrics import registry_for
from eblocks.testing import FakeClock, StaticResolver, transport_from

SETTINGS = resolve_settings(
    "b", None, Defaults(timeout=5.0, retries=RetryPolicy(attempts=3, backoff=0.01))
)
THREE = ["10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"]


def keyed(key: str = "k") -> Message:
    return Message(b"x", {IDEMPOTENCY_HEADER: key})


async def test_a_slow_try_times_out_alone_and_is_retried() -> None:
    never = asyncio.Event()
    tries: list[tuple[int, float | None]] = []

    async def transport(call: Call) -> Message:
        tries.append((call.attempt, call.deadline))
        if call.attempt == 1:
            await never.wait()  # the real loop's per-try timer (20 ms) ends it
        return Message(b"second")

    clock = FakeClock(start=100.0)
    route = Route(name="r", to="b", timeout=2.0, per_try_timeout=0.02)
    send = client_stack(SETTINGS, StaticResolver({"b": THREE}), transport, clock, random.Random(1))
    reply = await send(Call("b", keyed(), route=route))
    assert reply.body == b"second"
    # the route's timeout (2 s, not the block's 5 s) bounds the call; each try has 20 ms
    assert [t[0] for t in tries] == [1, 2]
    assert tries[0][1] == pytest.approx(100.02)


async def test_without_retries_a_slow_try_is_a_timeout_with_per_try_detail() -> None:
    never = asyncio.Event()

    async def transport(call: Call) -> Message:
        await never.wait()
        return Message()

    route = Route(name="r", to="b", per_try_timeout=0.02)
    send = client_stack(
        SETTINGS, StaticResolver({"b": THREE}), transport, FakeClock(), random.Random(1)
    )
    with pytest.raises(MeshTimeoutError) as caught:
        await send(Call("b", Message(b"not idempotent"), route=route))
    assert caught.value.detail == {"target": "b", "per_try": True}


async def test_a_per_try_timeout_past_the_calls_deadline_leaves_that_deadline_in_charge() -> None:
    never = asyncio.Event()
    tries: list[float | None] = []

    async def transport(call: Call) -> Message:
        tries.append(call.deadline)
        await never.wait()  # the real loop's timer (20 ms) ends it
        return Message()

    clock = FakeClock(start=100.0)
    route = Route(name="r", to="b", timeout=0.02, per_try_timeout=0.02)
    send = client_stack(SETTINGS, StaticResolver({"b": THREE}), transport, clock, random.Random(1))
    with pytest.raises(MeshTimeoutError) as caught:
        await send(Call("b", keyed(), route=route))
    # the call's timeout, not a try's: nothing is left to retry in
    assert caught.value.detail == {"target": "b"}
    assert tries == [pytest.approx(100.02)]


SPEC_POLICIES = Policies.model_validate(
    {
        "blocks": {
            "b": {
                "outlier": {
                    "consecutive_failures": 2,
                    "success_rate_stdev": None,
                    "max_ejected_percent": 100,
                    "base_ejection": 30,
                },
                "retry_budget": {"ratio": 0.1, "min_per_second": 0, "window": 10},
            }
        }
    }
)


async def test_retries_recover_every_call_and_the_failing_endpoint_is_ejected() -> None:
    hits: dict[int, int] = {1: 0, 2: 0, 3: 0}

    def transport(call: Call) -> Message:
        assert call.endpoint is not None
        hits[call.endpoint.port] += 1
        if call.endpoint.port == 1:
            raise ConnectError("refused")
        return Message(b"ok")

    policies = Policies.model_validate(
        {"blocks": {"b": {"outlier": {"consecutive_failures": 2, "success_rate_stdev": None}}}}
    )
    tel = Telemetry("a", "a-0", clock=FakeClock())
    send = client_stack(
        SETTINGS,
        StaticResolver({"b": THREE}),
        transport_from(transport),
        FakeClock(),
        random.Random(3),
        telemetry=tel,
        policies=LivePolicies.of(policies),
    )
    replies = [await send(Call("b", keyed(str(i)))) for i in range(60)]
    assert all(r.body == b"ok" for r in replies)
    assert hits[1] == 2  # ejected after its 2nd failure, for 30 s of fake time
    gauges = {h.name: {tuple(k): v for k, v in h.read()} for h in tel.hooks.gauges()}
    assert gauges["eblocks_endpoint_breaker_state"][("a", "b", "b-0", "open")] == 1.0
    assert gauges["eblocks_endpoint_breaker_state"][("a", "b", "b-1", "closed")] == 1.0
    assert gauges["eblocks_outlier_ejections"][("a", "b")] == 1.0


async def test_in_a_full_outage_the_budget_caps_retries_then_the_circuit_opens() -> None:
    tries = 0

    def transport(call: Call) -> Message:
        nonlocal tries
        tries += 1
        raise ConnectError("refused")

    tel = Telemetry("a", "a-0", clock=FakeClock())
    send = client_stack(
        SETTINGS,
        StaticResolver({"b": THREE}),
        transport_from(transport),
        FakeClock(),
        random.Random(3),
        telemetry=tel,
        policies=LivePolicies.of(SPEC_POLICIES),
    )
    failures: list[str] = []
    for i in range(100):
        with pytest.raises((ConnectError, CircuitOpenError)) as caught:
            await send(Call("b", keyed(str(i))))
        failures.append(caught.value.reason)
    # 2 failures eject each of the 3 endpoints: 6 tries, retries within 0.1 x first tries
    assert tries == 6
    assert failures.count("connect") <= 6
    assert failures[6:] == ["circuit_open"] * 94
    hooks = {h.name: list(h.read()) for h in tel.hooks.gauges()}
    refused = {tuple(k): v for k, v in hooks["eblocks_retry_budget_exhausted"]}
    assert refused[("a", "b")] == failures.count("connect")  # no call got its retry


async def test_a_handler_past_the_propagated_deadline_is_cancelled() -> None:
    wrote: list[str] = []
    cancelled = asyncio.Event()

    async def handler(msg: Message, ctx: object) -> Message:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        wrote.append("late")
        return Message(b"done")

    clock = SystemClock()

    class Ctx:
        deadline = clock.monotonic() + 0.02

    handle = inbound_deadline(clock)(handler)
    with pytest.raises(MeshTimeoutError) as caught:
        await handle(Message(), Ctx())  # type: ignore[arg-type]
    assert caught.value.detail == {"cancelled": True}
    assert cancelled.is_set()
    assert wrote == []


async def test_the_resilience_metrics_in_the_prometheus_text() -> None:
    def down(call: Call) -> Message:
        raise ConnectError("refused")

    tel = Telemetry("a", "a-0", clock=FakeClock())
    send = client_stack(
        SETTINGS,
        StaticResolver({"b": THREE}),
        transport_from(down),
        FakeClock(),
        random.Random(3),
        telemetry=tel,
        policies=LivePolicies.of(SPEC_POLICIES),
    )
    for i in range(2):
        with pytest.raises(ConnectError):
            await send(Call("b", keyed(str(i))))
    text = generate_latest(registry_for(tel)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["eblocks_retry_budget_exhausted"].type == "counter"
    assert families["eblocks_outlier_ejections"].type == "counter"
    assert families["eblocks_endpoint_breaker_state"].type == "gauge"
    assert "# TYPE eblocks_retry_budget_exhausted_total counter" in text
    assert 'eblocks_retry_budget_exhausted_total{dst_block="b",src_block="a"} 2.0' in text
    states = {
        (s.labels["endpoint"], s.labels["state"]): s.value
        for s in families["eblocks_endpoint_breaker_state"].samples
    }
    assert len(states) == 2 * 3  # the two endpoints tried, one series per state
    assert sum(states.values()) == 2
