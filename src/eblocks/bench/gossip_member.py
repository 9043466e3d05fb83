"""One gossip member in its own process, driven over stdin/stdout (benchmarks and tests).

Run as ``python -m eblocks.bench.gossip_member --host 127.0.0.1 --name m0``
with the mesh key in ``EBLOCKS_GOSSIP_KEY`` (hex). It binds a
:class:`~eblocks.discovery.GossipNode` and prints one JSON object per line:

    {"event": "ready", "name": ..., "port": ...}       after binding (and after each reset)
    {"event": "alive", "name": ..., "n": ..., "known": ..., "t": ...}
        its count of other ALIVE (``n``) or ALIVE + SUSPECT (``known``) members changed
    {"event": "down", "name": ..., "who": ..., "status": "dead"|"left", "t": ...}
    {"event": "up", "name": ..., "who": ..., "t": ...}   a member reported down is back
    {"event": "stats", "name": ..., "t": ..., "bytes_sent": ..., ...}   answer to ``stats``

``t`` is wall-clock time (``time.time()``), comparable across processes on one
host. Commands on stdin, one a line::

    join HOST:PORT[,HOST:PORT...]   push-pull with these seeds now
    stats                           print the counters
    reset NAME                      drop the node (no goodbye) and start a fresh one called NAME
    leave                           announce LEFT, then exit
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import orjson

from eblocks.discovery.member import Member, MemberRecord, MemberStatus
from eblocks.discovery.seeds import parse_addr
from eblocks.discovery.udp import GossipNode
from eblocks.discovery.wire import Keyring

__all__ = ["main"]


def _emit(**fields: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(fields) + b"\n")
    sys.stdout.buffer.flush()


class _Member:
    def __init__(self, host: str, keyring: Keyring, block: str) -> None:
        self.host = host
        self.keyring = keyring
        self.block = block
        self.gossip: GossipNode | None = None
        self.name = ""
        self._alive = (-1, -1)
        self._down: set[str] = set()  # members reported down (an "up" event when they return)

    async def start(self, name: str) -> None:
        if self.gossip is not None:
            await self.gossip.aclose(graceful=False)
        self.name, self._alive, self._down = name, (-1, -1), set()
        record = MemberRecord(mesh="bench", block=self.block, instance=name, host=self.host,
                              port=8000, gossip_port=0)  # fmt: skip
        self.gossip = GossipNode(record, keyring=self.keyring, leave_drain=0.3)
        await self.gossip.start()
        self.gossip.node.subscribe(self._changed)
        _emit(event="ready", name=name, port=self.gossip.addr[1], pid=os.getpid())

    def _changed(self, member: Member) -> None:
        assert self.gossip is not None
        node = self.gossip.node
        now = time.time()
        if member.instance != self.name and member.status in (MemberStatus.DEAD, MemberStatus.LEFT):
            self._down.add(member.instance)
            _emit(event="down", name=self.name, who=member.instance,
                  status=member.status.name.lower(), t=now)  # fmt: skip
        elif member.instance in self._down and member.status.reachable:
            self._down.discard(member.instance)  # a false DEAD, refuted
            _emit(event="up", name=self.name, who=member.instance, t=now)
        counts = (node.alive_count, node.reachable_count)
        if counts != self._alive:
            self._alive = counts
            _emit(event="alive", name=self.name, n=counts[0], known=counts[1], t=now)

    def stats(self) -> None:
        assert self.gossip is not None
        c = self.gossip.node.counters
        _emit(event="stats", name=self.name, t=time.time(), bytes_sent=c.bytes_sent,
              bytes_received=c.bytes_received, packets_sent=c.packets_sent,
              streams_sent=c.streams_sent, dropped=c.dropped_total,
              excused=c.probes_excused)  # fmt: skip


async def _run(args: argparse.Namespace) -> None:
    key = bytes.fromhex(os.environ["EBLOCKS_GOSSIP_KEY"])
    member = _Member(args.host, Keyring.from_keys([key]), args.block)
    await member.start(args.name)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, _, rest = line.partition(" ")
        assert member.gossip is not None
        if command == "join":
            member.gossip.node.join(parse_addr(a) for a in rest.split(",") if a)
        elif command == "stats":
            member.stats()
        elif command == "reset":
            await member.start(rest)
        elif command == "leave":
            break
    if member.gossip is not None:
        await member.gossip.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", required=True)
    parser.add_argument("--block", default="member")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
