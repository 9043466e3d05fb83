"""SWIM state machine: transitions with an injected clock and RNG, on the simulated network."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from eblocks.discovery.broadcast import BroadcastQueue, retransmit_limit
from eblocks.discovery.member import (
    Health,
    Load,
    Member,
    MemberRecord,
    MemberStatus,
    load_changed,
    supersedes,
)
from eblocks.discovery.sim import SIM_KEY, SimNetwork, make_record
from eblocks.discovery.swim import SwimConfig, SwimNode
from eblocks.discovery.wire import Keyring, Kind, StateUpdate, encode, encode_update

ALIVE, SUSPECT, DEAD, LEFT = MemberStatus


def cluster(
    n: int, *, config: SwimConfig | None = None, seed: int = 1
) -> tuple[SimNetwork, list[SwimNode]]:
    net = SimNetwork(rng=random.Random(seed))
    nodes = [net.add_node(make_record(i), config=config) for i in range(n)]
    for node in nodes:
        node.start([nodes[0].record.gossip_addr])
        net.wake(node.record.gossip_addr)
    net.wait_for(lambda: all(nd.alive_count == n - 1 for nd in nodes), timeout=10)
    return net, nodes


def status(node: SwimNode, other: SwimNode) -> MemberStatus | None:
    member = node.member(other.record.instance)
    return None if member is None else member.status


def rumour(node: SwimNode, about: str, state: MemberStatus, incarnation: int) -> None:
    update = encode_update(StateUpdate(state, about, incarnation))
    node.receive(("192.0.2.1", 1), encode(Keyring(SIM_KEY), Kind.GOSSIP, 0, "outsider", [update]))


def history(
    net: SimNetwork, nodes: list[SwimNode], *instances: str
) -> list[tuple[float, str, MemberStatus]]:
    """Every status change of ``instances`` seen by any node: (time, observer, status)."""
    seen: list[tuple[float, str, MemberStatus]] = []
    for node in nodes:

        def listener(m: Member, who: str = node.record.instance) -> None:
            if m.instance in instances:
                seen.append((net.clock.monotonic(), who, m.status))

        node.subscribe(listener)
    return seen


def test_status_precedence_and_load_threshold() -> None:
    assert supersedes(SUSPECT, 3, ALIVE, 3)
    assert not supersedes(ALIVE, 3, SUSPECT, 3)
    assert supersedes(ALIVE, 4, DEAD, 3)
    assert supersedes(LEFT, 3, DEAD, 3)
    assert not supersedes(DEAD, 2, ALIVE, 3)
    assert load_changed(Load(10), Load(13))
    assert not load_changed(Load(10, 100.0), Load(11, 105.0))


def test_record_validates_ports_and_instance() -> None:
    with pytest.raises(ValueError, match="gossip_port"):
        MemberRecord("m", "b", "b-1", "h", 1, 70000)
    with pytest.raises(ValueError, match="instance"):
        MemberRecord("m", "b", "", "h", 1, 2)


def test_config_rejects_a_probe_timeout_longer_than_the_period() -> None:
    with pytest.raises(ValueError, match="probe_timeout"):
        SwimConfig(probe_interval=0.5, probe_timeout=0.5)


def test_killed_member_goes_suspect_then_dead_after_the_suspicion_timeout() -> None:
    net, nodes = cluster(8)
    victim = nodes[3]
    seen = history(net, nodes, victim.record.instance)
    killed_at = net.clock.monotonic()
    net.kill(victim.record.gossip_addr)
    others = [nd for nd in nodes if nd is not victim]
    net.wait_for(lambda: all(status(nd, victim) is DEAD for nd in others), timeout=10)
    first_suspect = min(t for t, _, s in seen if s is SUSPECT)
    first_dead = min(t for t, _, s in seen if s is DEAD)
    assert first_suspect > killed_at
    assert first_dead - first_suspect >= SwimConfig().suspicion_timeout(8) - 1e-9
    assert {s for _, _, s in seen} == {SUSPECT, DEAD}


def test_suspected_member_refutes_with_a_higher_incarnation() -> None:
    net, nodes = cluster(5)
    a, b = nodes[0], nodes[1]
    rumour(a, b.record.instance, SUSPECT, 0)
    assert status(a, b) is SUSPECT
    rumour(b, b.record.instance, SUSPECT, 0)
    assert b.incarnation == 1
    net.run(SwimConfig().suspicion_timeout(5) + 1.0)
    for node in nodes:
        member = node.member(b.record.instance)
        assert member is not None
        assert (member.status, member.incarnation) == (ALIVE, 1)


def test_stale_rumours_lose_against_the_current_incarnation() -> None:
    net, nodes = cluster(3)
    a, b = nodes[0], nodes[1]
    b.update_record(labels={"v": "2"})  # incarnation 1, gossiped
    net.run(1.0)
    rumour(a, b.record.instance, ALIVE, 5)  # ALIVE without a record vouches for nothing
    rumour(a, b.record.instance, SUSPECT, 0)  # older than incarnation 1
    member = a.member(b.record.instance)
    assert member is not None
    assert (member.status, member.incarnation, member.record.labels) == (ALIVE, 1, {"v": "2"})


def test_indirect_probes_keep_a_member_alive_across_a_cut_link() -> None:
    net, nodes = cluster(4)
    a, c = nodes[1], nodes[2]
    seen = history(net, nodes, c.record.instance, a.record.instance)
    net.cut(a.record.gossip_addr, c.record.gossip_addr)
    net.run(15.0)
    assert [s for _, _, s in seen if s is not ALIVE] == []
    assert status(a, c) is ALIVE


def test_without_indirect_probes_a_cut_link_raises_suspicion() -> None:
    net, nodes = cluster(4, config=SwimConfig(indirect_probes=0))
    a, c = nodes[1], nodes[2]
    seen = history(net, nodes, c.record.instance, a.record.instance)
    net.cut(a.record.gossip_addr, c.record.gossip_addr)
    net.run(15.0)
    assert SUSPECT in {s for _, _, s in seen}


def test_graceful_leave_is_announced_and_never_suspected() -> None:
    net, nodes = cluster(6)
    leaver = nodes[2]
    seen = history(net, nodes, leaver.record.instance)
    leaver.leave()
    net.run(0.5)
    net.kill(leaver.record.gossip_addr)
    net.run(10.0)
    others = [nd for nd in nodes if nd is not leaver]
    assert all(status(nd, leaver) is LEFT for nd in others)
    assert {s for _, _, s in seen} == {LEFT}


def test_restarted_member_rejoins_with_a_higher_incarnation() -> None:
    net, nodes = cluster(5)
    old = nodes[4]
    net.kill(old.record.gossip_addr)
    others = nodes[:4]
    net.wait_for(lambda: all(status(nd, old) is DEAD for nd in others), timeout=10)
    new = net.add_node(old.record)  # same instance and address, incarnation 0 again
    new.start([others[0].record.gossip_addr])
    net.wake(new.record.gossip_addr)
    net.wait_for(lambda: all(status(nd, new) is ALIVE for nd in others), timeout=10)
    assert new.incarnation >= 1
    assert new.alive_count == 4


def test_node_without_the_key_cannot_join_and_is_counted() -> None:
    net, nodes = cluster(3)
    intruder = net.add_node(make_record(99), keyring=Keyring(b"w" * 32))
    intruder.start([nodes[0].record.gossip_addr])
    net.wake(intruder.record.gossip_addr)
    net.run(5.0)
    assert nodes[0].counters.dropped_auth > 0
    assert all(nd.member(intruder.record.instance) is None for nd in nodes)
    assert intruder.alive_count == 0
    assert intruder.counters.dropped_auth == 0  # nobody answered it


def test_load_and_record_changes_reach_every_member() -> None:
    config = SwimConfig(sync_interval=5.0)  # load gossip is best effort; push-pull repairs misses
    net, nodes = cluster(6, config=config)
    a = nodes[0]
    a.set_load(10, 40.0, 5)
    a.update_record(health=Health.DRAINING)
    net.run(config.load_interval + config.sync_interval + 1.0)
    for node in nodes[1:]:
        member = node.member(a.record.instance)
        assert member is not None
        assert member.record.health is Health.DRAINING
        assert (member.record.load.inflight, member.record.load.queue) == (10, 5)
        assert member.incarnation == 1


def test_same_seed_same_run() -> None:
    def run() -> list[int]:
        net, nodes = cluster(6, seed=42)
        net.run(5.0)
        return [nd.counters.bytes_sent for nd in nodes]

    assert run() == run()


def test_broadcast_is_sent_a_bounded_number_of_times() -> None:
    queue = BroadcastQueue()
    queue.push("a", 0, b"[1]", limit_mult=4)
    sent = 0
    while queue.take(1000, members=50):
        sent += 1
    assert sent == retransmit_limit(4, 50) == 8
    queue.push("a", 0, b"[1]", limit_mult=1)
    queue.push("a", 0, b"[2]", limit_mult=1)  # replaces the older update about "a"
    assert queue.take(1000, members=50) == [b"[2]"]


def test_packets_never_exceed_max_packet() -> None:
    config = SwimConfig(max_packet=600)
    net = SimNetwork(rng=random.Random(3))
    records = [replace(make_record(i), labels={"k": "v" * 40}) for i in range(30)]
    nodes = [net.add_node(r, config=config) for r in records]
    sizes: list[int] = []
    original = net.deliver

    def deliver(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        sizes.append(len(data))
        original(src, dst, data)

    net.deliver = deliver  # type: ignore[method-assign]
    for node in nodes:
        node.start([nodes[0].record.gossip_addr])
        net.wake(node.record.gossip_addr)
    net.wait_for(lambda: all(nd.alive_count == 29 for nd in nodes), timeout=20)
    assert max(sizes) <= 600
    assert sum(nd.counters.dropped_total for nd in nodes) == 0


class _Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[tuple[str, int], bytes]] = []

    def send(self, addr: tuple[str, int], data: bytes) -> None:
        self.sent.append((addr, data))


@pytest.mark.parametrize("late", [False, True], ids=["on-time", "ran-late"])
def test_a_node_whose_timers_ran_late_does_not_suspect_the_peer(late: bool) -> None:
    from eblocks.testing import FakeClock

    clock = FakeClock()
    node = SwimNode(
        make_record(0), keyring=Keyring(SIM_KEY), transport=_Outbox(), clock=clock,
        rng=random.Random(3),
    )  # fmt: skip
    peer = make_record(1)
    node.seed([peer])
    node.start()
    cfg = node.config
    for _ in range(20):  # ~4 probe periods either way
        if late:  # starved: every timer fires a period late, an ack may sit unread
            clock.advance(cfg.probe_interval + cfg.probe_timeout)
        else:
            clock.advance(max(0.0, min(node.next_deadline() - clock.monotonic(), 0.1)))
        node.tick()
    got = node.member(peer.instance)
    assert got is not None
    assert got.status is ALIVE if late else got.status in (SUSPECT, DEAD)
    assert (node.counters.probes_excused > 0) is late
