"""Gossip across three hosts (network namespaces joined by a bridge, 198.18.0.0/24).

Two member processes per host. Join through seeds on another host; a partition
(one host's link down) and its healing; losing every seed after joining.
Every wait is bounded; no assertion is about speed.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from eblocks.bench.gossip_fleet import Fleet, MemberProcess

from .network import Network

pytestmark = pytest.mark.netns

BOUND = 60.0
PER_HOST = 2


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet(secrets.token_bytes(32)) as running:
        yield running


async def _start(network: Network, fleet: Fleet) -> list[list[MemberProcess]]:
    """Members on every host, joined through the seeds on host 0; returns them by host."""
    hosts = [
        [
            await fleet.spawn(f"h{h}-m{i}", host=network.addresses[h], prefix=network.prefix(h))
            for i in range(PER_HOST)
        ]
        for h in range(len(network.hosts))
    ]
    everyone = [m for host in hosts for m in host]
    fleet.join(everyone, hosts[0])
    await fleet.wait(
        lambda: all(m.known_now == len(everyone) - 1 for m in everyone), BOUND, "joined"
    )
    return hosts


def _sees_dead(viewers: list[MemberProcess], gone: list[MemberProcess]) -> bool:
    names = {g.name for g in gone}
    return all(
        names <= {who for who, (status, _) in v.down.items() if status == "dead"} for v in viewers
    )


async def test_join_across_hosts_then_a_partition_heals(network: Network, fleet: Fleet) -> None:
    hosts = await _start(network, fleet)
    majority, island = hosts[0] + hosts[1], hosts[2]
    for member in island:  # seeds and peers really are on other hosts
        assert member.host == "198.18.0.3"

    network.cut(2)
    await fleet.wait(lambda: _sees_dead(majority, island), BOUND, "the island DEAD on a and b")
    await fleet.wait(lambda: _sees_dead(island, majority), BOUND, "a and b DEAD on the island")
    assert all(m.known_now == len(majority) - 1 for m in majority)

    network.heal(2)
    everyone = majority + island
    await fleet.wait(
        lambda: all(m.known_now == len(everyone) - 1 for m in everyone), BOUND, "healed views"
    )
    await fleet.stats(everyone)
    assert sum(m.stats["dropped"] for m in everyone) == 0


async def test_losing_every_seed_after_joining_changes_nothing(
    network: Network, fleet: Fleet
) -> None:
    hosts = await _start(network, fleet)
    seeds, rest = hosts[0], hosts[1] + hosts[2]
    for seed in seeds:
        fleet.kill(seed)
    await fleet.wait(lambda: _sees_dead(rest, seeds), BOUND, "the seeds DEAD everywhere")
    # the DEAD reports and the view counts arrive as separate lines (and a loaded
    # host may briefly suspect a live peer): the rest settle on the full view
    await fleet.wait(
        lambda: all(m.known_now == len(rest) - 1 for m in rest), BOUND, "the rest know each other"
    )

    # membership goes on without them: a newcomer joins through any member ...
    newcomer = await fleet.spawn("h0-new", host=network.addresses[0], prefix=network.prefix(0))
    fleet.join([newcomer], rest[-1:])
    everyone = [*rest, newcomer]
    await fleet.wait(
        lambda: all(m.known_now == len(everyone) - 1 for m in everyone), BOUND, "newcomer"
    )
    # ... and a failure is still detected by everyone
    victim, survivors = rest[0], [*rest[1:], newcomer]
    fleet.kill(victim)
    await fleet.wait(lambda: _sees_dead(survivors, [victim]), BOUND, "the victim DEAD")
