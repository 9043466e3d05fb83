"""Joining in a crowd (re-syncs after the join), fresh news gossiped at once, compact views.

Times are simulated seconds on the fake clock, never wall-clock time.
"""

from __future__ import annotations

import random

import pytest

from eblocks.discovery.member import MemberStatus
from eblocks.discovery.sim import SIM_KEY, SimNetwork, make_record
from eblocks.discovery.swim import SwimConfig, SwimNode
from eblocks.discovery.viewstore import Directory, IdPool, View
from eblocks.discovery.wire import Keyring, Kind, Packet, decode

ALIVE, SUSPECT, DEAD, LEFT = MemberStatus


def parse(data: bytes) -> Packet:
    return decode(data, Keyring(SIM_KEY), now=0.0, max_size=1 << 20)


def crowd_join(
    n: int, *, config: SwimConfig | None = None, seed: int = 1, skew: float = 0.3
) -> tuple[SimNetwork, list[SwimNode], float]:
    """``n`` started nodes told to join the same three seeds within ``skew`` seconds
    (as `eblocks bench discovery` does); returns when the join commands are all given."""
    net = SimNetwork(rng=random.Random(seed))
    nodes = [net.add_node(make_record(i), config=config) for i in range(n)]
    for node in nodes:
        node.start()
        net.wake(node.record.gossip_addr)
    seeds = [node.record.gossip_addr for node in nodes[:3]]
    t0 = net.clock.monotonic()
    for when, i in sorted((net.rng.uniform(0, skew), i) for i in range(n)):
        net.run_until(t0 + when)
        nodes[i].join(seeds)
        net.wake(nodes[i].record.gossip_addr)
    return net, nodes, t0


def everyone_known(nodes: list[SwimNode]) -> bool:
    return all(node.reachable_count == len(nodes) - 1 for node in nodes)


def test_a_crowd_joining_through_three_seeds_converges_within_two_seconds() -> None:
    net, nodes, t0 = crowd_join(40)
    net.wait_for(lambda: everyone_known(nodes), timeout=30)
    assert net.clock.monotonic() - t0 <= 2.0


def test_without_re_syncs_the_crowd_waits_for_probes_and_periodic_syncs() -> None:
    # the seeds' first answers miss whoever joined later; gossip alone leaves holes
    net, nodes, _t0 = crowd_join(40, config=SwimConfig(join_syncs=0))
    net.run(2.0)
    assert not everyone_known(nodes)
    net.wait_for(lambda: everyone_known(nodes), timeout=60)  # repaired, but much later


def test_join_re_syncs_stop_once_one_brings_nothing_new() -> None:
    net, nodes, _ = crowd_join(12)
    net.wait_for(lambda: everyone_known(nodes), timeout=30)
    net.run(5.0)
    joiner = net.add_node(make_record(99))
    syncs: list[float] = []
    original = net.deliver

    def deliver(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        if src == joiner.record.gossip_addr:
            packet = parse(data)
            if packet.kind is Kind.SYNC and packet.seq == 0:
                syncs.append(net.clock.monotonic())
        original(src, dst, data)

    net.deliver = deliver  # type: ignore[method-assign]
    start = net.clock.monotonic()
    joiner.start([nodes[0].record.gossip_addr])
    net.wake(joiner.record.gossip_addr)
    net.run(10.0)
    assert joiner.alive_count == 12
    # the join, then one re-sync after join_sync; that one taught nothing: no more
    config = joiner.config
    assert [round(t - start, 2) for t in syncs] == [0.0, config.join_sync]


def test_fresh_news_after_an_idle_spell_is_gossiped_at_once() -> None:
    net, nodes, _ = crowd_join(8)
    net.wait_for(lambda: everyone_known(nodes), timeout=30)
    net.run(10.0)  # every queue drained
    seen: list[tuple[float, tuple[str, int], Kind]] = []
    original = net.deliver

    def deliver(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        seen.append((net.clock.monotonic(), src, parse(data).kind))
        original(src, dst, data)

    net.deliver = deliver  # type: ignore[method-assign]
    net.run(5.0)
    assert seen
    assert Kind.GOSSIP not in {kind for _, _, kind in seen}
    a = nodes[2]
    a.update_record(labels={"v": "2"})
    now = net.clock.monotonic()
    assert a.next_deadline() == now  # not at the next gossip tick
    net.wake(a.record.gossip_addr)
    net.run(0.0)
    sent = [(t, kind) for t, src, kind in seen if src == a.record.gossip_addr and t == now]
    assert sent == [(now, Kind.GOSSIP)] * a.config.gossip_fanout


def test_config_validates_the_join_re_syncs() -> None:
    with pytest.raises(ValueError, match="join_sync"):
        SwimConfig(join_sync=0.0)
    with pytest.raises(ValueError, match="join_syncs"):
        SwimConfig(join_syncs=-1)


def test_view_entries_read_and_write_through_the_arrays() -> None:
    directory = Directory()
    view = View(directory)
    a, b = make_record(1), make_record(2)
    assert view.get(a.instance) is None
    assert len(view) == 0
    entry = view.add(a, ALIVE, 3, now=10.0)
    view.add(b, ALIVE, 0, now=11.0)
    assert directory.find(a.instance) == entry.id == 0
    assert len(view) == 2
    entry.status, entry.incarnation, entry.suspect_until = SUSPECT, 2**40, 12.5
    again = view.get(a.instance)
    assert again is not None
    assert (again.status, again.incarnation, again.suspect_until) == (SUSPECT, 2**40, 12.5)
    assert again.record is a
    assert again.instance == a.instance
    assert again.snapshot().since == 10.0
    view.remove(a.instance)
    assert a.instance not in view
    assert b.instance in view
    assert len(view) == 1
    assert [e.instance for e in view.entries()] == [b.instance]
    # a re-added member starts afresh (no suspicion left over)
    assert view.add(a, ALIVE, 4, now=13.0).suspect_until == 0.0


def test_views_of_one_directory_share_records_and_copy_in_bulk() -> None:
    directory = Directory()
    records = [make_record(i) for i in range(50)]
    template = View.of(directory, records, now=1.0)
    net_view = View(directory)
    net_view.copy_from(template, now=2.0)
    assert len(net_view) == 50
    got = net_view.get(records[7].instance)
    assert got is not None
    assert got.record is records[7]
    assert got.since == 2.0
    net_view.remove(records[7].instance)  # copies are independent
    assert records[7].instance in template
    with pytest.raises(ValueError, match="directory"):
        View(Directory()).copy_from(template, now=0.0)
    pool = template.pool()
    pool.discard(3)
    assert 3 not in pool
    assert 3 in template.pool()
    assert len(template.pool()) == 50


def test_id_pool_add_discard_and_sample() -> None:
    pool = IdPool([5, 9, 2, 40])
    pool.add(9)
    assert len(pool) == 4
    assert 40 in pool
    assert 41 not in pool
    assert -1 not in pool
    pool.discard(9)
    pool.discard(9)
    assert sorted(pool.snapshot()) == [2, 5, 40]
    rng = random.Random(4)
    for _ in range(20):
        picked = pool.sample(rng, 2, exclude=5)
        assert len(picked) == 2
        assert 5 not in picked
        assert len(set(picked)) == 2
    big = IdPool(range(100))
    picked = big.sample(rng, 3, exclude=7)
    assert len(set(picked)) == 3
    assert 7 not in picked


def test_seeding_thousands_of_views_from_a_template_keeps_each_node_out_of_its_own() -> None:
    net = SimNetwork(rng=random.Random(2))
    records = [make_record(i) for i in range(300)]
    nodes = [net.add_node(r) for r in records]
    template = View.of(net.directory, records, net.clock.monotonic())
    for node in nodes:
        node.seed(template)
    assert all(node.alive_count == node.reachable_count == 299 for node in nodes)
    assert nodes[5].member(records[5].instance) == nodes[5].me()  # itself, not a view entry
    member = nodes[5].member(records[6].instance)
    assert member is not None
    assert member.record is records[6]
    assert len(nodes[5].members()) == 300
