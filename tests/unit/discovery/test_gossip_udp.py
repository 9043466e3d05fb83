"""Real GossipNodes on 127.0.0.1: UDP gossip, TCP push-pull, key rotation, a client's view."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import pytest

from eblocks.discovery.client_view import ViewResolver, fetch_view
from eblocks.discovery.gossip_resolver import GossipResolver
from eblocks.discovery.member import MemberStatus
from eblocks.discovery.sim import make_record
from eblocks.discovery.stream import write_frame
from eblocks.discovery.swim import Addr
from eblocks.discovery.udp import GossipNode
from eblocks.discovery.wire import Keyring, Kind, encode
from eblocks.errors import DiscoveryError

KEY = b"loopback-test-gossip-key-0123456"


def loopback(index: int, seeds: tuple[tuple[str, int], ...] = ()) -> GossipNode:
    record = replace(make_record(index), host="127.0.0.1", gossip_port=0)
    return GossipNode(record, keyring=Keyring.from_keys([KEY]), seeds=seeds, leave_drain=0.2)


def status(node: GossipNode, instance: str) -> MemberStatus | None:
    member = node.node.member(instance)
    return None if member is None else member.status


async def until(
    nodes: list[GossipNode], condition: Callable[[], bool], within: float = 10.0
) -> None:
    """Wait, at most ``within`` seconds, for ``condition`` to hold after some view change."""
    changed = asyncio.Event()
    unsubscribe = [n.node.subscribe(lambda _member: changed.set()) for n in nodes]
    try:
        async with asyncio.timeout(within):
            while not condition():
                await changed.wait()
                changed.clear()
    finally:
        for stop in unsubscribe:
            stop()


async def test_five_udp_nodes_converge_and_see_a_graceful_leave() -> None:
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(loopback(0))
        nodes = [first]
        for i in range(1, 5):
            nodes.append(await stack.enter_async_context(loopback(i, (first.addr,))))
        await until(nodes, lambda: all(n.node.alive_count == 4 for n in nodes))
        resolver = GossipResolver(first.node)
        assert len(resolver.endpoints("svc")) == 5
        leaver = nodes[4]
        name = leaver.node.record.instance
        await leaver.aclose()
        await until(nodes[:4], lambda: all(n.node.alive_count == 3 for n in nodes[:4]))
        assert all(status(n, name) is MemberStatus.LEFT for n in nodes[:4])
        assert len(resolver.endpoints("svc")) == 4
        assert sum(n.node.counters.dropped_total for n in nodes) == 0
    assert all(n._transport is None for n in nodes)


async def test_binding_a_taken_port_raises_a_discovery_error() -> None:
    async with loopback(0) as first:
        taken = replace(make_record(1), host="127.0.0.1", gossip_port=first.addr[1])
        with pytest.raises(DiscoveryError, match="cannot bind"):
            async with GossipNode(taken, keyring=Keyring(KEY)):
                pass


async def test_a_joiner_gets_a_large_view_in_one_tcp_push_pull() -> None:
    # the seed knows 200 members (far more than one datagram holds): the joiner learns them all
    async with loopback(0) as seed, loopback(1, ()) as joiner:
        seed.node.seed([make_record(i) for i in range(100, 300)])
        joiner.node.join([seed.addr])
        await until([joiner], lambda: len(joiner.node.members()) == 202)
        assert joiner.node.counters.streams_sent == 1
        assert joiner.node.counters.stream_failures == 0
        assert seed.node.counters.streams_received == 1
        assert status(joiner, seed.node.record.instance) is MemberStatus.ALIVE


async def test_a_tcp_push_pull_with_the_wrong_key_is_dropped_and_answered_with_nothing() -> None:
    async with loopback(0) as member:
        intruder = replace(make_record(9), host="127.0.0.1", gossip_port=0)
        wrong = Keyring(b"not-the-mesh-key-0123456789abcdef")
        async with GossipNode(intruder, keyring=wrong) as bad:
            data = bad.node.state_message(Kind.SYNC)
            reader, writer = await asyncio.open_connection(*member.addr)
            write_frame(writer, data)
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await reader.read()
            writer.close()
            assert answer == b""  # closed without a reply: nothing learnt
            assert member.node.counters.dropped == {"unknown_key": 1}  # not a key of this mesh
            assert member.node.member(intruder.instance) is None


async def test_an_oversized_tcp_frame_is_refused_before_it_is_read() -> None:
    async with loopback(0) as member:
        reader, writer = await asyncio.open_connection(*member.addr)
        writer.write((member.node.config.max_stream + 1).to_bytes(4, "big"))
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        assert member.node.counters.dropped == {"oversized": 1}


async def poll(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - counters have no change event to wait on
            await asyncio.sleep(0.02)


async def test_keys_rotate_member_by_member_without_a_lost_packet() -> None:
    new = b"the-next-gossip-key-0123456789ab"
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(loopback(0))
        nodes = [first]
        for i in range(1, 3):
            nodes.append(await stack.enter_async_context(loopback(i, (first.addr,))))
        await until(nodes, lambda: all(n.node.alive_count == 2 for n in nodes))
        # one member at a time: accept the new key; sign with it; drop the old one (window)
        for keys in ([KEY, new], [new, KEY], [new]):
            for n in nodes:
                n.node.keyring.update(keys, window=60.0, now=n.node.clock.monotonic())
                await asyncio.sleep(0.3)  # let gossip flow between each member's switch
        joiner = replace(make_record(4), host="127.0.0.1", gossip_port=0)
        fresh = await stack.enter_async_context(
            GossipNode(joiner, keyring=Keyring.from_keys([new]), seeds=(first.addr,))
        )
        await until([*nodes, fresh], lambda: all(n.node.alive_count == 3 for n in nodes))
        assert sum(n.node.counters.dropped_total for n in [*nodes, fresh]) == 0
        # a packet under the old key is still accepted in the window, and dropped after it
        old_packet = encode(Keyring.from_keys([KEY]), Kind.GOSSIP, 0, "old-member")
        loop = asyncio.get_running_loop()
        sender, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        try:
            received = first.node.counters.packets_received
            sender.sendto(old_packet, first.addr)
            await poll(lambda: first.node.counters.packets_received > received)
            assert first.node.counters.dropped_total == 0
            first.node.keyring.update([new], window=0.0, now=first.node.clock.monotonic() - 1)
            sender.sendto(old_packet, first.addr)
            await poll(lambda: first.node.counters.dropped_auth == 1)
        finally:
            sender.close()


def seeds_of(*addrs: Addr) -> Callable[[], Awaitable[Sequence[Addr]]]:
    async def seeds() -> Sequence[Addr]:
        return addrs

    return seeds


async def test_a_client_sees_the_members_and_follows_a_leave_without_joining() -> None:
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(loopback(0))
        nodes = [first]
        for i in range(1, 4):
            nodes.append(await stack.enter_async_context(loopback(i, (first.addr,))))
        await until(nodes, lambda: all(n.node.alive_count == 3 for n in nodes))
        view = ViewResolver(
            seeds_of(("127.0.0.1", 1), nodes[2].addr),  # the first seed is not a member
            Keyring.from_keys([KEY]),
            refresh=0.1,
        )
        async with view:
            assert {e.instance for e in view.endpoints("svc")} == {
                "svc-0",
                "svc-1",
                "svc-2",
                "svc-3",
            }
            assert all(len(n.node.members()) == 4 for n in nodes)  # nobody learnt the client
            changes = view.watch()
            await anext(changes)
            await nodes[3].aclose()
            async with asyncio.timeout(10):
                while {e.instance for e in view.endpoints("svc")} != {"svc-0", "svc-1", "svc-2"}:
                    await anext(changes)


async def test_asking_with_the_wrong_key_gets_nothing() -> None:
    async with loopback(0) as member:
        with pytest.raises(DiscoveryError, match=r"gossip member 127\.0\.0\.1"):
            await fetch_view(member.addr, Keyring.from_keys([b"not-the-mesh-key-0123456789abc"]))
        assert member.node.counters.dropped_auth == 1
        view = ViewResolver(seeds_of(), Keyring.from_keys([KEY]))
        with pytest.raises(DiscoveryError, match="no seeds"):
            await view.update()
