"""A fleet of gossip member processes (:mod:`.gossip_member`) and what they report.

Used by ``eblocks bench discovery`` (50 members on loopback) and by the
loopback and network-namespace tests. Each member is a real process with its
own UDP/TCP sockets; the fleet reads the JSON lines they print and keeps, per
member name, the times its count of ALIVE peers changed and when it saw each
other member go DEAD or LEFT::

    async with Fleet(key) as fleet:
        await fleet.spawn("m0")
        ...
        await fleet.wait(lambda: fleet.sees_all(names), within=30, what="convergence")

``prefix`` runs a member under another command (``ip netns exec ns1``).
Closing the fleet kills every process it started (SIGKILL) and reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson

__all__ = ["Fleet", "MemberProcess"]


@dataclass
class MemberProcess:
    """One member process: its current name and gossip address, and what it reported."""

    proc: asyncio.subprocess.Process
    name: str
    host: str
    port: int = 0
    # (ALIVE count, ALIVE + SUSPECT count, t) since the last reset
    alive: list[tuple[int, int, float]] = field(default_factory=list)
    # who -> (status, first t) while down; an "up" report (a refuted false DEAD) removes it
    down: dict[str, tuple[str, float]] = field(default_factory=dict)
    downs: int = 0  # DEAD/LEFT reports since the last reset (false ones under starvation)
    stats: dict[str, Any] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def alive_now(self) -> int:
        return self.alive[-1][0] if self.alive else 0

    @property
    def known_now(self) -> int:
        return self.alive[-1][1] if self.alive else 0

    def first_time_alive(self, count: int) -> float | None:
        """When this member first saw ``count`` others ALIVE at once."""
        return next((t for n, _, t in self.alive if n >= count), None)

    def first_time_known(self, count: int) -> float | None:
        """When this member first held ``count`` others ALIVE or SUSPECT (none DEAD)."""
        return next((t for _, k, t in self.alive if k >= count), None)


class Fleet:
    """Member processes by name; every wait is bounded."""

    def __init__(self, key: bytes, *, ready_within: float = 60.0) -> None:
        self._key = key
        self._ready_within = ready_within
        self.members: dict[str, MemberProcess] = {}
        self._retired: list[MemberProcess] = []  # replaced by a process of the same name
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def spawn(
        self, name: str, *, host: str = "127.0.0.1", prefix: Sequence[str] = ()
    ) -> MemberProcess:
        """Start one member process and wait until it has bound its sockets."""
        env = dict(os.environ, EBLOCKS_GOSSIP_KEY=self._key.hex())
        command = [*prefix, sys.executable, "-m", "eblocks.bench.gossip_member"]
        proc = await asyncio.create_subprocess_exec(
            *command, "--host", host, "--name", name,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        member = MemberProcess(proc, name, host)
        if name in self.members:
            self._retired.append(self.members[name])
        self.members[name] = member
        member.reader = asyncio.create_task(self._read(member), name=f"fleet-{name}")
        await self._await_ready(member)
        return member

    async def spawn_many(
        self, names: Iterable[str], *, host: str = "127.0.0.1", parallel: int = 8
    ) -> list[MemberProcess]:
        slots = asyncio.Semaphore(parallel)

        async def one(name: str) -> MemberProcess:
            async with slots:
                return await self.spawn(name, host=host)

        return list(await asyncio.gather(*(one(n) for n in names)))

    def send(self, member: MemberProcess, line: str) -> None:
        if member.proc.stdin is not None and member.proc.returncode is None:
            member.proc.stdin.write(line.encode() + b"\n")

    def join(self, members: Iterable[MemberProcess], seeds: Iterable[MemberProcess]) -> None:
        line = "join " + ",".join(s.addr for s in seeds)
        for member in members:
            self.send(member, line)

    async def reset(self, member: MemberProcess, name: str) -> None:
        """Replace the member's node by a fresh one called ``name`` (the old one just stops)."""
        del self.members[member.name]
        member.name, member.port, member.alive, member.down = name, 0, [], {}
        member.downs = 0
        member.ready.clear()
        self.members[name] = member
        self.send(member, f"reset {name}")
        await self._await_ready(member)

    async def stats(self, members: Sequence[MemberProcess], within: float = 30.0) -> None:
        for member in members:
            member.stats = {}
            self.send(member, "stats")
        await self.wait(lambda: all(m.stats for m in members), within, "stats from every member")

    def kill(self, member: MemberProcess) -> None:
        """``kill -9``: no goodbye, the member just stops answering."""
        with contextlib.suppress(ProcessLookupError):
            member.proc.send_signal(signal.SIGKILL)

    async def wait(self, condition: Callable[[], bool], within: float, what: str) -> None:
        """Wait until ``condition()`` holds after some report; TimeoutError naming ``what``."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    changed = self._changed
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{what}: not within {within:g} s") from None

    async def aclose(self) -> None:
        members = [*self.members.values(), *self._retired]
        for member in members:
            self.kill(member)
        for member in members:
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(member.proc.wait(), 10.0)
            if member.reader is not None:
                member.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await member.reader
        self.members.clear()
        self._retired.clear()

    async def _await_ready(self, member: MemberProcess) -> None:
        try:
            async with asyncio.timeout(self._ready_within):
                await member.ready.wait()
        except TimeoutError:
            stopped = member.reader is not None and member.reader.done()
            raise TimeoutError(
                f"member {member.name} not ready in {self._ready_within:g} s "
                f"(exit code {member.proc.returncode}, reader stopped: {stopped})"
            ) from None
        if member.port == 0:
            code = await member.proc.wait()
            raise RuntimeError(f"member {member.name} exited with {code} before binding")

    async def _read(self, member: MemberProcess) -> None:
        assert member.proc.stdout is not None
        while line := await member.proc.stdout.readline():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if event.get("name") != member.name:
                continue  # a report from the node before a reset
            kind = event.get("event")
            if kind == "ready":
                member.port = int(event["port"])
                member.ready.set()
            elif kind == "alive":
                member.alive.append((int(event["n"]), int(event["known"]), float(event["t"])))
            elif kind == "down":
                member.down.setdefault(event["who"], (event["status"], float(event["t"])))
                member.downs += 1
            elif kind == "up":
                member.down.pop(event["who"], None)
            elif kind == "stats":
                member.stats = event
            self._wake()
        member.ready.set()  # exited: let a waiter see the return code
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
