"""Twenty real gossip member processes on loopback: converge, lose three to kill -9, take them back.

Every wait is bounded; no assertion is about speed (that is `eblocks bench discovery`).
"""

from __future__ import annotations

import secrets

import psutil
import pytest

from eblocks.bench.gossip_fleet import Fleet

pytestmark = pytest.mark.integration

MEMBERS = 20
BOUND = 60.0  # generous: the machine is shared; detection takes ~2-3 s


async def test_twenty_processes_converge_on_the_view_without_the_killed_ones() -> None:
    async with Fleet(secrets.token_bytes(32)) as fleet:
        procs = await fleet.spawn_many(f"m{i}" for i in range(MEMBERS))
        pids = [p.proc.pid for p in procs]
        fleet.join(procs, procs[:2])
        await fleet.wait(lambda: all(p.known_now == MEMBERS - 1 for p in procs), BOUND, "join")

        victims, survivors = procs[5:8], procs[:5] + procs[8:]
        for victim in victims:
            fleet.kill(victim)
        names = {v.name for v in victims}

        def removed() -> bool:
            return all(
                names <= {who for who, (status, _) in p.down.items() if status == "dead"}
                and p.known_now == len(survivors) - 1
                for p in survivors
            )

        await fleet.wait(removed, BOUND, "the killed members DEAD in every survivor's view")

        # the same names come back in new processes; they refute their death and rejoin
        back = [await fleet.spawn(v.name) for v in victims]
        fleet.join(back, survivors[-2:])
        everyone = survivors + back
        await fleet.wait(
            lambda: all(p.known_now == MEMBERS - 1 for p in everyone), BOUND, "restarted members"
        )
        await fleet.stats(everyone)
        assert sum(p.stats["dropped"] for p in everyone) == 0
        pids += [p.proc.pid for p in back]
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
