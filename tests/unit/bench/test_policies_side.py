"""The `--policies` side of `bench overhead`: every policy configured, and none triggering."""

from __future__ import annotations

import random

import pytest

from eblocks.bench.policy_cost import CLIENT_VARIANTS, VARIANTS, bench_client, client_cost
from eblocks.bench.servers import POLICIES_SPEC
from eblocks.block.context import Context
from eblocks.block.stack import Admission, server_stack
from eblocks.message import IDEMPOTENCY_HEADER, SOURCE_HEADER, Message
from eblocks.policies import LivePolicies
from eblocks.spec import parse_spec
from eblocks.testing import FakeClock


def test_every_policy_is_configured() -> None:
    policies = parse_spec(POLICIES_SPEC, "<bench policies>").policies
    (route,) = policies.routes
    assert route.to == "echo"
    assert len(route.destinations) == 1
    assert route.mirror is not None
    assert route.mirror.percent == 0
    assert route.retries is not None
    echo = policies.blocks["echo"]
    assert echo.retry_budget is not None
    assert echo.outlier is not None
    assert echo.limits is not None
    assert echo.rate_limits
    assert echo.bulkhead is not None
    assert echo.faults
    assert all(f.abort is None or f.abort.percent == 0 for f in echo.faults)


async def test_the_inbound_layers_run_on_every_call_and_refuse_none() -> None:
    clock = FakeClock()
    live = LivePolicies.of(parse_spec(POLICIES_SPEC, "<bench policies>").policies)
    admission = Admission.of(live, "echo", clock, random.Random(1))

    async def echo(msg: Message, _ctx: Context) -> Message:
        return msg

    handle = server_stack(echo, clock, admission)
    msg = Message(b"x", {SOURCE_HEADER: "bench", "x-chaos": "0"})
    for _ in range(1000):
        ctx = Context(block="echo", instance="echo-0", request_id="r")
        assert (await handle(msg, ctx)).body == b"x"
    (limiter,) = admission.limits.cache.get()
    bucket = limiter.bucket("bench")
    assert bucket.tokens(clock.monotonic()) == bucket.burst - 1000  # every call took a token
    assert clock.sleeps == []  # and no fault delayed one


async def test_the_client_with_policies_routes_and_budgets_every_call_and_refuses_none() -> None:
    client = bench_client(policies=True)
    plain = bench_client(policies=False)
    try:
        for n in range(200):
            msg = Message(b"x%d" % n, {IDEMPOTENCY_HEADER: str(n)})
            assert (await client.call("echo", msg)).body == msg.body
            assert (await plain.call("echo", msg)).body == msg.body
        assert client.routing.stats.counts == {("echo-all", "echo"): 200}
        assert client.routing.mirrors.counts == {}  # 0 %: no copy
        assert plain.routing.stats.counts == {}
    finally:
        for mesh in (client, plain):
            await mesh.aclose()
            assert mesh.telemetry is not None  # a block's client counts its calls
            await mesh.telemetry.aclose()


async def test_the_client_cost_times_both_variants() -> None:
    with pytest.raises(ValueError, match="multiple of concurrency"):
        await client_cost(calls=50, rounds=1)
    cost = await client_cost(calls=64, rounds=2)
    assert list(cost["us_per_call"]) == list(CLIENT_VARIANTS) == ["no policies", "every rule"]
    assert all(value > 0 for value in cost["us_per_call"].values())
    assert list(cost["added_us"]) == ["every rule"]
    assert all(len(rounds) == 2 for rounds in cost["rounds_us"].values())
    assert VARIANTS[0] == "no layers"  # the inbound base
