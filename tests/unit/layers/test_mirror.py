"""Mirror: sampled shadow copies, bounded in flight, never felt by the caller."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
import yaml

from eblocks import MeshClient
from eblocks._types import Call, Endpoint, Send
from eblocks.errors import ConnectError
from eblocks.layers.mirror import Mirrors
from eblocks.message import MIRROR_HEADER, Message
from eblocks.policies import LivePolicies
from eblocks.spec import parse_spec
from eblocks.spec.policies import Mirror, Policies, Route
from eblocks.testing import FakeClock, StaticResolver, transport_from
from eblocks.transport import HttpTransport

ROUTE = Route(name="shadowed", to="store", mirror=Mirror(to="shadow", max_inflight=3))


class Gate:
    """A `stack(block)` whose sends wait until released, recording what they got."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.calls: list[Call] = []

    def stack(self, block: str) -> Send:
        async def wait(call: Call) -> Message:
            self.calls.append(call)
            await self.open.wait()
            return Message(b"shadow")

        return transport_from(wait)


async def settle(done: Callable[[], bool] | None = None) -> None:
    """Let the copies run: five loop turns, or until ``done()`` (bounded: 1,000 turns)."""
    for turn in range(1000):
        if done() if done is not None else turn >= 5:
            return
        await asyncio.sleep(0)
    raise AssertionError("the copies did not settle in 1,000 loop turns")


async def test_a_share_of_the_requests_is_copied() -> None:
    sent: list[Call] = []

    def receive(call: Call) -> Message:
        sent.append(call)
        return Message(b"ok")

    mirrors = Mirrors(lambda block: transport_from(receive), random.Random(3))
    sampled = Mirror(to="shadow", percent=25, max_inflight=10_000)
    for _ in range(4000):
        mirrors.copy(ROUTE, sampled, Call("store", Message(b"x")))
    await settle(lambda: mirrors.inflight("shadowed") == 0)
    await mirrors.aclose()
    assert 900 <= len(sent) <= 1100
    assert mirrors.counts == Counter({("shadowed", "ok"): len(sent)})


async def test_at_most_max_inflight_copies_run_and_the_rest_are_dropped() -> None:
    gate = Gate()
    mirrors = Mirrors(gate.stack, random.Random(1))
    assert ROUTE.mirror is not None
    for _ in range(10):
        mirrors.copy(ROUTE, ROUTE.mirror, Call("store", Message(b"x")))
    await settle()
    assert len(gate.calls) == 3
    assert mirrors.inflight("shadowed") == 3
    assert mirrors.counts == Counter({("shadowed", "dropped"): 7})
    gate.open.set()
    await settle()
    assert mirrors.inflight("shadowed") == 0
    mirrors.copy(ROUTE, ROUTE.mirror, Call("store", Message(b"x")))  # room again
    await settle()
    assert mirrors.counts == Counter({("shadowed", "dropped"): 7, ("shadowed", "ok"): 4})
    await mirrors.aclose()


async def test_the_copy_is_marked_and_keeps_the_route_and_the_mirror_subset() -> None:
    gate = Gate()
    gate.open.set()
    mirrors = Mirrors(gate.stack, random.Random(1))
    mirror = Mirror(to="shadow", subset={"version": "v2"})
    original = Call("store", Message(b"body", {"x-user": "u1"}), deadline=12.5)
    mirrors.copy(ROUTE, mirror, original)
    await settle()
    [copy] = gate.calls
    assert (copy.target, copy.route, copy.deadline) == ("shadow", ROUTE, 12.5)
    assert copy.subset == {"version": "v2"}
    assert copy.message.body == b"body"
    assert copy.message.headers == {"x-user": "u1", MIRROR_HEADER: "1"}
    assert MIRROR_HEADER not in original.message.headers
    await mirrors.aclose()


async def test_close_cancels_the_copies_in_flight_and_drops_later_ones() -> None:
    gate = Gate()  # never opened: the copies hang
    mirrors = Mirrors(gate.stack, random.Random(1))
    assert ROUTE.mirror is not None
    for _ in range(2):
        mirrors.copy(ROUTE, ROUTE.mirror, Call("store", Message()))
    await settle()
    await mirrors.aclose()
    assert mirrors.counts == Counter({("shadowed", "cancelled"): 2})
    assert mirrors.inflight("shadowed") == 0
    mirrors.copy(ROUTE, ROUTE.mirror, Call("store", Message()))
    assert mirrors.counts[("shadowed", "dropped")] == 1


# --- through a MeshClient: the caller sees nothing of its shadow -------------------------

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults: {timeout: 10s}
blocks:
  store: {handler: "tests:h"}
  shadow: {handler: "tests:h"}
""",
    "unit.yaml",
)
POLICIES = """
routes:
  - name: shadowed
    to: store
    mirror: {to: shadow, percent: 100, max_inflight: 4}
  - name: never
    to: shadow
    destinations: [{block: store}]
"""


class Transport(HttpTransport):
    """store answers at once; shadow fails or hangs, as told."""

    def __init__(self, shadow: str) -> None:
        super().__init__()
        self.shadow = shadow
        self.release = asyncio.Event()
        self.shadow_calls: list[Call] = []

    async def send(self, call: Call) -> Message:
        assert call.endpoint is not None
        if call.target == "store":
            return Message(b"store:" + call.message.body)
        self.shadow_calls.append(call)
        if self.shadow == "fail":
            raise ConnectError("shadow is down")
        await self.release.wait()
        return Message(b"late")


@pytest.fixture(params=["fail", "hang"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[MeshClient]:
    resolver = StaticResolver(
        {
            "store": [Endpoint("store", "store-0", "10.0.0.1", 80)],
            "shadow": [Endpoint("shadow", "shadow-0", "10.0.0.2", 80)],
        }
    )
    mesh = MeshClient(
        SPEC,
        resolver,
        clock=FakeClock(),
        rng=random.Random(5),
        transport=Transport(request.param),
        policies=LivePolicies.of(Policies.model_validate(yaml.safe_load(POLICIES))),
    )
    yield mesh
    await mesh.aclose()


async def test_a_failing_or_hanging_shadow_changes_nothing_for_the_caller(
    client: MeshClient,
) -> None:
    transport = client._transport
    assert isinstance(transport, Transport)
    replies = []
    for i in range(10):
        replies.append(await client.call("store", Message(f"{i}".encode())))
        await settle()  # the copies get loop turns between calls
    assert [r.body for r in replies] == [f"store:{i}".encode() for i in range(10)]
    counts = client.routing.mirrors.counts
    if transport.shadow == "fail":
        # every copy ran and failed (retried as the shadow's policy says), none reached the caller
        assert counts == Counter({("shadowed", "failed"): 10})
    else:
        # four hang, the other six are dropped: the caller never waited for any
        assert counts == Counter({("shadowed", "dropped"): 6})
        assert client.routing.mirrors.inflight("shadowed") == 4
    copies = transport.shadow_calls
    assert copies
    assert all(c.message.headers[MIRROR_HEADER] == "1" for c in copies)
    # the copy went to the shadow itself: the shadow's own route did not send it back
    assert {(c.target, c.route.name if c.route else None) for c in copies} == {
        ("shadow", "shadowed")
    }
    await client.aclose()
    if transport.shadow == "hang":
        assert counts == Counter({("shadowed", "dropped"): 6, ("shadowed", "cancelled"): 4})
    assert client.routing.mirrors.inflight("shadowed") == 0
