"""GossipResolver: endpoints by block, health and labels; SUSPECT last; DEAD/LEFT gone; watch."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

from eblocks import Endpoint, Resolver
from eblocks.discovery.gossip_resolver import GossipResolver
from eblocks.discovery.member import Health, MemberRecord, MemberStatus
from eblocks.discovery.sim import SIM_KEY, SimNetwork, make_record
from eblocks.discovery.swim import SwimNode
from eblocks.discovery.wire import Keyring, Kind, StateUpdate, encode, encode_update

ALIVE, SUSPECT, DEAD, LEFT = MemberStatus


def rumour(node: SwimNode, update: StateUpdate) -> None:
    data = encode(Keyring(SIM_KEY), Kind.GOSSIP, 0, "outsider", [encode_update(update)])
    node.receive(("192.0.2.1", 1), data)


def observer(*others: MemberRecord) -> SwimNode:
    """A node whose view holds ``others`` as ALIVE (not started: no timers, no sends)."""
    node = SimNetwork(rng=random.Random(0)).add_node(make_record(0, block="client"))
    node.seed(others)
    return node


A1, A2, A3 = (make_record(i, block="a") for i in (1, 2, 3))
B1 = make_record(4, block="b")


def names(resolver: GossipResolver, block: str) -> list[str]:
    return [ep.instance for ep in resolver.endpoints(block)]


def test_lists_alive_endpoints_by_block_in_stable_order() -> None:
    resolver = GossipResolver(observer(A3, B1, A1, A2))
    assert isinstance(resolver, Resolver)
    assert names(resolver, "a") == ["a-1", "a-2", "a-3"]
    assert resolver.endpoints("b") == (
        Endpoint("b", "b-4", B1.host, B1.port, {"tier": "sim", "zone": "z1"}),
    )
    assert resolver.endpoints("missing") == ()
    assert names(resolver, "client") == ["client-0"]  # the node itself, unless excluded
    assert GossipResolver(observer(A1), include_self=False).endpoints("client") == ()


def test_suspect_members_come_last_and_dead_or_left_ones_are_removed() -> None:
    node = observer(A1, A2, A3)
    resolver = GossipResolver(node)
    rumour(node, StateUpdate(SUSPECT, "a-1", 0))
    assert names(resolver, "a") == ["a-2", "a-3", "a-1"]
    assert [m.status for m in resolver.members("a")] == [ALIVE, ALIVE, SUSPECT]
    rumour(node, StateUpdate(DEAD, "a-1", 0))
    rumour(node, StateUpdate(LEFT, "a-3", 0))
    assert names(resolver, "a") == ["a-2"]


def test_refuted_member_returns_to_its_place() -> None:
    node = observer(A1, A2)
    resolver = GossipResolver(node)
    rumour(node, StateUpdate(SUSPECT, "a-1", 0))
    rumour(node, StateUpdate(ALIVE, "a-1", 1, A1))
    assert names(resolver, "a") == ["a-1", "a-2"]


def test_filters_by_health_and_label_selector() -> None:
    blue = replace(A2, labels={"tier": "sim", "color": "blue"})
    node = observer(A1, blue, A3)
    rumour(node, StateUpdate(ALIVE, "a-3", 1, replace(A3, health=Health.DRAINING)))
    assert names(GossipResolver(node), "a") == ["a-1", "a-2"]
    assert names(GossipResolver(node, labels={"color": "blue"}), "a") == ["a-2"]
    assert names(GossipResolver(node, labels={"color": "red"}), "a") == []


async def test_watch_yields_the_view_and_each_change() -> None:
    node = observer(A1, A2)
    resolver = GossipResolver(node)
    changes = resolver.watch()
    first = await asyncio.wait_for(anext(changes), 1)
    assert [ep.instance for ep in first["a"]] == ["a-1", "a-2"]
    rumour(node, StateUpdate(DEAD, "a-2", 0))
    second = await asyncio.wait_for(anext(changes), 1)
    assert [ep.instance for ep in second["a"]] == ["a-1"]
    rumour(node, StateUpdate(ALIVE, "b-4", 0, B1))
    third = await asyncio.wait_for(anext(changes), 1)
    assert set(third) == {"a", "b", "client"}
    await changes.aclose()
    resolver.close()
