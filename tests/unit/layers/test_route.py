"""Route layer: a MeshClient over an in-memory transport, with policy routes.

Blocks ``store`` (instances labelled version v1 and v2), ``store-v2``, ``shadow``
and ``fallback`` (the one stage of pattern ``fb``). Each reply names the
instance that answered; the transport records what each one received.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.exposition import generate_latest

from eblocks import MeshClient
from eblocks._types import Call, Endpoint
from eblocks.errors import MeshError, MeshTimeoutError, NoEndpointsError, UpstreamError
from eblocks.message import (
    HASH_KEY_HEADER,
    IDEMPOTENCY_HEADER,
    ROUTE_HEADER,
    Message,
)
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.match import MessageMatcher, compile_message_any
from eblocks.respond import error_body
from eblocks.spec import parse_spec
from eblocks.spec.policies import Policies, RouteMatch
from eblocks.telemetry.core import Telemetry
from eblocks.telemetry.metrics import registry_for
from eblocks.testing import FakeClock, StaticResolver
from eblocks.transport import HttpTransport

SPEC = parse_spec(
    """
apiVersion: eblocks/v1
mesh: unit
defaults: {timeout: 10s, retries: {attempts: 2}}
blocks:
  store: {handler: "tests:h"}
  store-v2: {handler: "tests:h", labels: {version: v2}}
  shadow: {handler: "tests:h"}
  fallback: {handler: "tests:h"}
patterns:
  fb: {pipeline: [fallback]}
""",
    "unit.yaml",
)

RESOLVER = StaticResolver(
    {
        "store": [
            Endpoint("store", "store-a", "10.0.0.1", 80, {"version": "v1"}),
            Endpoint("store", "store-b", "10.0.0.2", 80, {"version": "v2", "zone": "z1"}),
        ],
        "store-v2": [Endpoint("store-v2", "store-v2-a", "10.0.1.1", 80, {"version": "v2"})],
        "shadow": [Endpoint("shadow", "shadow-a", "10.0.2.1", 80)],
        "fallback": [Endpoint("fallback", "fallback-a", "10.0.3.1", 80)],
    }
)


@dataclass(frozen=True)
class Received:
    instance: str
    route: str | None
    subset: dict[str, str] | None
    headers: dict[str, str]


class FakeTransport(HttpTransport):
    """Answers each call with the name of the instance it was sent to."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []

    async def send(self, call: Call) -> Message:
        assert call.endpoint is not None
        self.received.append(
            Received(
                call.endpoint.instance,
                call.route.name if call.route is not None else None,
                dict(call.subset) if call.subset is not None else None,
                dict(call.message.headers),
            )
        )
        return Message(call.endpoint.instance.encode())

    def instances(self) -> Counter[str]:
        return Counter(r.instance for r in self.received)


class FailingTransport(FakeTransport):
    """Never answers the instances in ``hang``; raises ``error`` for any other one."""

    def __init__(self, hang: Collection[str] = (), error: MeshError | None = None) -> None:
        super().__init__()
        self.hang = hang
        self.error = error

    async def send(self, call: Call) -> Message:
        assert call.endpoint is not None
        if call.endpoint.instance in self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return await super().send(call)


def policies(text: str) -> Policies:
    return Policies.model_validate(yaml.safe_load(text))


Make = Callable[..., MeshClient]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    clients: list[MeshClient] = []

    def build(text: str = "{}", seed: int = 7, **kwargs: Any) -> MeshClient:
        client = MeshClient(
            SPEC,
            RESOLVER,
            clock=FakeClock(),
            rng=random.Random(seed),
            transport=kwargs.pop("transport", None) or FakeTransport(),
            policies=LivePolicies.of(policies(text)),
            **kwargs,
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


def received(client: MeshClient) -> FakeTransport:
    transport = client._transport
    assert isinstance(transport, FakeTransport)
    return transport


async def ask(client: MeshClient, target: str = "store", **headers: str) -> str:
    reply = await client.call(target, Message.of(b"q", **headers))
    return reply.text()


async def test_a_target_without_routes_is_called_unchanged(make: Make) -> None:
    client = make("routes: [{name: other, to: shadow}]")
    assert {await ask(client) for _ in range(20)} == {"store-a", "store-b"}
    assert {(r.route, r.subset) for r in received(client).received} == {(None, None)}
    assert client.routing.stats.counts == Counter()


PRECEDENCE = """
routes:
  - name: beta
    to: store
    match: [{headers: {x-tenant: {exact: beta}}}]
    destinations: [{block: store-v2}]
  - name: admin
    to: store
    match: [{path: {prefix: /admin}}, {query: {debug: {regex: "1|yes"}}}]
    destinations: [{pattern: fb}]
  - name: rest
    to: store
    destinations: [{subset: {version: v1}}]
"""


async def test_the_first_matching_route_wins(make: Make) -> None:
    client = make(PRECEDENCE)
    assert await ask(client, x_tenant="beta", x_eblocks_path="/admin/x") == "store-v2-a"
    assert await ask(client, x_eblocks_path="/admin/x") == "fallback-a"
    assert await ask(client, x_eblocks_path="/v1/items?debug=yes") == "fallback-a"
    assert await ask(client, x_eblocks_path="/v1/items?debug=no") == "store-a"
    assert await ask(client, x_tenant="alpha") == "store-a"
    assert await ask(client) == "store-a"
    got = [(r.instance, r.route, r.subset) for r in received(client).received]
    assert got == [
        ("store-v2-a", "beta", None),
        ("fallback-a", None, None),  # a pattern's stage is a call of its own
        ("fallback-a", None, None),
        ("store-a", "rest", {"version": "v1"}),
        ("store-a", "rest", {"version": "v1"}),
        ("store-a", "rest", {"version": "v1"}),
    ]
    # the pattern's calls say which route sent them there
    assert [r.headers.get(ROUTE_HEADER) for r in received(client).received[1:3]] == ["admin"] * 2
    assert client.routing.stats.counts == Counter(
        {("beta", "store-v2"): 1, ("admin", "pattern/fb"): 2, ("rest", "store/version=v1"): 3}
    )


async def test_a_method_condition_sees_calls_between_blocks_as_post(make: Make) -> None:
    client = make(
        """
routes:
  - {name: gets, to: store, match: [{methods: [get]}], destinations: [{block: store-v2}]}
  - {name: posts, to: store, match: [{methods: [POST]}], destinations: [{block: shadow}]}
"""
    )
    assert await ask(client) == "shadow-a"


SPLIT = """
routes:
  - name: canary
    to: store
    destinations:
      - {subset: {version: v1}, weight: 90}
      - {block: store-v2, weight: 10}
      - {block: shadow, weight: 0}
"""


async def test_a_split_follows_the_weights(make: Make) -> None:
    client = make(SPLIT)
    for _ in range(5000):
        await ask(client)
    counts = received(client).instances()
    assert set(counts) == {"store-a", "store-v2-a"}  # weight 0: never; store-b: not in v1
    assert 0.87 <= counts["store-a"] / 5000 <= 0.93
    assert client.routing.stats.counts == Counter(
        {
            ("canary", "store/version=v1"): counts["store-a"],
            ("canary", "store-v2"): counts["store-v2-a"],
        }
    )


async def test_a_mirror_at_0_percent_copies_nothing_and_leaves_the_split_as_it_was(
    make: Make,
) -> None:
    mirror = "    mirror: {to: shadow, percent: 0}\n"
    mirrored = SPLIT.replace("    to: store\n", "    to: store\n" + mirror)
    assert mirrored != SPLIT
    plain, shadowed = make(SPLIT, seed=11), make(mirrored, seed=11)
    for _ in range(200):
        await ask(plain)
        await ask(shadowed)
    # the same seed, the same destinations: the mirror drew nothing from the shared RNG
    assert [r.instance for r in received(shadowed).received] == [
        r.instance for r in received(plain).received
    ]
    assert shadowed.routing.mirrors.counts == Counter()


STICKY = """
routes:
  - name: canary
    to: store
    sticky: {header: X-User}
    destinations: [{block: store-v2, weight: 30}, {block: store, weight: 70}]
"""


async def test_sticky_keeps_each_key_on_one_destination_in_every_process(make: Make) -> None:
    one, two = make(STICKY, seed=1), make(STICKY, seed=2)
    first: dict[str, str] = {}
    for user in range(300):
        answers = [await ask(one, x_user=f"u{user}") for _ in range(4)]
        answers += [await ask(two, x_user=f"u{user}") for _ in range(4)]
        versions = {"v2" if answer == "store-v2-a" else "v1" for answer in answers}
        assert len(versions) == 1, (user, answers)
        first[f"u{user}"] = versions.pop()
    share = Counter(first.values())["v2"] / len(first)
    assert 0.2 <= share <= 0.4
    # the key also reaches the balancer, for hashing balancers: one key, one endpoint
    assert {r.headers[HASH_KEY_HEADER] for r in received(one).received} == set(first)


async def test_a_weight_change_only_moves_keys_onto_the_grown_destination(make: Make) -> None:
    before = make(STICKY)
    after = make(STICKY.replace("weight: 30", "weight: 50").replace("weight: 70", "weight: 50"))
    moved: Counter[bool] = Counter()
    for user in range(300):
        old = await ask(before, x_user=f"u{user}")
        new = await ask(after, x_user=f"u{user}")
        if old == "store-v2-a":
            assert new == "store-v2-a", user
        moved[new == "store-v2-a" and old != "store-v2-a"] += 1
    assert moved[True] > 0


async def test_sticky_defaults_to_the_idempotency_key(make: Make) -> None:
    client = make(STICKY.replace("sticky: {header: X-User}", "sticky: {}"))
    for key in range(50):
        answers = set()
        for _ in range(4):
            reply = await client.call("store", Message(b"q", {IDEMPOTENCY_HEADER: f"k{key}"}))
            answers.add("v2" if reply.text() == "store-v2-a" else "v1")
        assert len(answers) == 1
    assert not any(HASH_KEY_HEADER in r.headers for r in received(client).received)


async def test_a_call_without_the_sticky_key_is_split_at_random(make: Make) -> None:
    client = make(STICKY)
    answers = Counter([await ask(client) for _ in range(400)])
    assert 60 < answers["store-v2-a"] < 180


async def test_a_subset_keeps_only_the_endpoints_with_its_labels(make: Make) -> None:
    client = make(
        """
routes:
  - {name: v2, to: store, destinations: [{subset: {version: v2, zone: z1}}]}
"""
    )
    assert {await ask(client) for _ in range(20)} == {"store-b"}


async def test_an_empty_subset_fails_naming_the_target_and_the_subset(make: Make) -> None:
    client = make("routes: [{name: v3, to: store, destinations: [{subset: {version: v3}}]}]")
    with pytest.raises(NoEndpointsError, match=r"block 'store' in subset version=v3") as info:
        await ask(client)
    assert info.value.detail == {"target": "store", "subset": {"version": "v3"}, "route": "v3"}
    assert error_body(info.value)["route"] == "v3"  # what a block answers its caller with
    assert received(client).received == []


async def test_a_routes_timeout_names_the_route(make: Make) -> None:
    client = make(
        "routes: [{name: slow, to: store, timeout: 20ms, destinations: [{block: store-v2}]}]",
        transport=FailingTransport(hang={"store-v2-a"}),
    )
    with pytest.raises(MeshTimeoutError) as info:
        await asyncio.wait_for(ask(client), 5)
    assert info.value.detail == {"target": "store-v2", "route": "slow"}
    assert error_body(info.value)["route"] == "slow"


async def test_a_routes_per_try_timeout_names_the_route(make: Make) -> None:
    client = make(
        "routes: [{name: tries, to: store, timeout: 5s, per_try_timeout: 20ms, "
        "retries: {attempts: 1}, destinations: [{block: store-v2}]}]",
        transport=FailingTransport(hang={"store-v2-a"}),
    )
    with pytest.raises(MeshTimeoutError) as info:
        await asyncio.wait_for(ask(client), 5)
    assert info.value.detail == {"target": "store-v2", "per_try": True, "route": "tries"}


async def test_an_error_that_names_a_route_already_keeps_it(make: Make) -> None:
    relayed = UpstreamError(
        "store-v2 answered 503",
        status=503,
        reason="no_endpoints",
        origin="store-v2",
        detail={"route": "deeper"},
    )
    client = make(
        "routes: [{name: to-v2, to: store, destinations: [{block: store-v2}]}]",
        transport=FailingTransport(error=relayed),
    )
    with pytest.raises(UpstreamError) as info:
        await ask(client)
    assert info.value.detail["route"] == "deeper"


async def test_an_unrouted_calls_error_names_no_route(make: Make) -> None:
    client = make(
        "routes: [{name: beta, to: store, match: [{headers: {x-tenant: {exact: beta}}}]}]",
        transport=FailingTransport(hang={"store-a", "store-b"}),
    )
    reply = client.call("store", Message.of(b"q"), deadline=0.02)  # the fake clock is at 0
    with pytest.raises(MeshTimeoutError) as info:
        await asyncio.wait_for(reply, 5)
    assert "route" not in info.value.detail


async def test_a_call_routed_to_another_block_is_not_routed_again(make: Make) -> None:
    client = make(
        """
routes:
  - {name: to-v2, to: store, destinations: [{block: store-v2}]}
  - {name: back, to: store-v2, destinations: [{block: store}]}
"""
    )
    assert await ask(client) == "store-v2-a"
    assert await ask(client, target="store-v2") in {"store-a", "store-b"}
    assert [r.route for r in received(client).received] == ["to-v2", "back"]


async def test_a_pattern_destination_does_not_loop_back_into_its_route(make: Make) -> None:
    client = make("routes: [{name: loop, to: fallback, destinations: [{pattern: fb}]}]")
    assert await ask(client, target="fallback") == "fallback-a"
    assert len(received(client).received) == 1
    assert client.routing.stats.counts == Counter({("loop", "pattern/fb"): 1})


async def test_routes_compile_once_per_policy_version(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[tuple[RouteMatch, ...]] = []
    real = compile_message_any

    def counting(matches: tuple[RouteMatch, ...]) -> MessageMatcher:
        compiled.append(matches)
        return real(matches)

    monkeypatch.setattr("eblocks.layers.route.compile_message_any", counting)
    client = make(PRECEDENCE)
    for _ in range(50):
        await ask(client, x_tenant="beta")
    assert len(compiled) == 3
    new = policies("routes: [{name: all, to: store, destinations: [{block: shadow}]}]")
    assert client.policies.swap(PolicyState.of(new, version=1))
    assert {await ask(client, x_tenant="beta") for _ in range(50)} == {"shadow-a"}
    assert len(compiled) == 4


async def test_route_counts_are_exposed_as_a_prometheus_counter(make: Make) -> None:
    telemetry = Telemetry("caller", "caller-0")
    client = make(SPLIT, telemetry=telemetry)
    for _ in range(30):
        await ask(client)
    text = generate_latest(registry_for(telemetry)).decode()
    assert "# TYPE eblocks_route_requests_total counter" in text
    counts = client.routing.stats.counts
    for (name, dest), n in counts.items():
        line = f'eblocks_route_requests_total{{destination="{dest}",route="{name}"}} {float(n)}'
        assert line in text
    assert sum(counts.values()) == 30


async def test_the_smallest_weights_split_evenly(make: Make) -> None:
    client = make(
        "routes: [{name: ab, to: store, destinations: [{block: shadow, weight: 1}, "
        "{block: store-v2, weight: 1}]}]"
    )
    answers = Counter([await ask(client) for _ in range(1000)])
    assert 400 <= answers["shadow-a"] <= 600
    assert answers["shadow-a"] + answers["store-v2-a"] == 1000


def _doc_examples() -> list[str]:
    """The YAML examples of the routing, split and mirroring sections of docs/policies.md."""
    text = (Path(__file__).parents[3] / "docs" / "policies.md").read_text(encoding="utf-8")
    start = text.index("## Routing")
    end = text.find("\n## ", text.index("## Mirroring"))
    ours = text[start : end if end != -1 else len(text)]
    return re.findall(r"```yaml\n(.*?)```", ours, flags=re.DOTALL)


def test_the_docs_examples_are_valid_specs() -> None:
    examples = _doc_examples()
    assert len(examples) == 5
    for example in examples:
        data = yaml.safe_load(example)
        spec: dict[str, Any] = {
            "apiVersion": "eblocks/v1",
            "mesh": "docs",
            "blocks": {
                name: {"handler": "h:h"} for name in ("store", "store-v2", "store-v3", "search")
            },
            "patterns": {"reports": {"pipeline": ["store"]}},
        }
        spec["blocks"].update(data.pop("blocks", {}))
        spec.update(data)
        parsed = parse_spec(yaml.safe_dump(spec), "policies.md")
        assert parsed.policies.routes, example


async def test_a_call_routed_to_another_block_is_counted_under_both(make: Make) -> None:
    telemetry = Telemetry("caller", "caller-0")
    client = make(
        "routes: [{name: to-v2, to: store, destinations: [{block: store-v2}]}]", telemetry=telemetry
    )
    for _ in range(3):
        assert await ask(client) == "store-v2-a"
    assert {s.peer: s.requests for s in telemetry.outbound} == {"store": 3, "store-v2": 3}
