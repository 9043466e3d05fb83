"""The simulated network: convergence, detection within the bound, partitions, loss, figures.

Times here are simulated seconds on the fake clock, never wall-clock time.
"""

from __future__ import annotations

import random

from eblocks.discovery.member import MemberStatus
from eblocks.discovery.sim import NetworkConditions, SimNetwork, make_record, simulate
from eblocks.discovery.swim import SwimConfig, SwimNode


def start(n: int, *, seed: int = 5, loss: float = 0.0) -> tuple[SimNetwork, list[SwimNode]]:
    net = SimNetwork(rng=random.Random(seed), conditions=NetworkConditions(loss=loss))
    nodes = [net.add_node(make_record(i)) for i in range(n)]
    for node in nodes:
        node.start([nodes[0].record.gossip_addr])
        net.wake(node.record.gossip_addr)
    return net, nodes


def converged(nodes: list[SwimNode]) -> bool:
    return all(nd.alive_count == len(nodes) - 1 for nd in nodes)


def test_thirty_members_converge_within_two_seconds() -> None:
    net, nodes = start(30)
    assert net.wait_for(lambda: converged(nodes), timeout=10) <= 2.0


def test_members_converge_despite_packet_loss() -> None:
    net, nodes = start(20, loss=0.05)
    net.wait_for(lambda: converged(nodes), timeout=10)
    net.run(10.0)  # and stay converged: suspicions under loss are refuted, not fatal
    dead = [m for nd in nodes for m in nd.members() if m.status is not MemberStatus.ALIVE]
    assert dead == []


def test_fifty_members_meet_the_targets() -> None:
    report = simulate(50, seed=1)
    assert report.cold_start
    assert report.converge_seconds <= 2.0
    assert report.detect_seconds <= 3.0
    assert report.bytes_per_member_s + report.sync_bytes_per_member_s <= 2048
    assert 0 < report.packets_per_member_s < 20


def test_large_runs_seed_the_views_and_time_a_join() -> None:
    report = simulate(120, seed=2, cold_start_max=100, steady_window=2.0)
    assert not report.cold_start
    assert report.members == 121
    assert 0 < report.converge_seconds <= 2.0
    assert report.detect_seconds <= SwimConfig().suspicion_timeout(121) + 2.0


def test_partition_marks_the_other_side_dead_and_heal_merges_the_views() -> None:
    net, nodes = start(16)
    net.wait_for(lambda: converged(nodes), timeout=10)
    left, right = nodes[:8], nodes[8:]
    net.partition([nd.record.gossip_addr for nd in left], [nd.record.gossip_addr for nd in right])

    def split() -> bool:
        return all(
            (m := nd.member(other.record.instance)) is not None and m.status is MemberStatus.DEAD
            for side, others in ((left, right), (right, left))
            for nd in side
            for other in others
        )

    net.wait_for(split, timeout=15)
    assert all(nd.alive_count == 7 for nd in nodes)
    net.heal()
    net.wait_for(lambda: converged(nodes), timeout=30)
