"""A client's view of a gossip mesh without joining it: ask any member for its state.

``eblocks call`` and ``eblocks submit`` are short-lived clients; joining the
gossip for each of them would churn every member's view with records that
come and go. Instead the client asks a member (any seed) for its full state
over the authenticated TCP push-pull (:mod:`.stream`): it sends a SYNC that
carries no record of its own, so the member answers with its view and learns
nothing. The client needs the mesh gossip key, like any member::

    async with ViewResolver(lambda: seeds, Keyring.from_keys(keys)) as resolver:
        resolver.endpoints("tokenize")   # ALIVE first, SUSPECT last, DEAD/LEFT never

The view is refreshed every ``refresh`` seconds from a member that answers, so
a long ``submit`` follows instances that leave, fail or join.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from eblocks._types import Endpoint
from eblocks.discovery.gossip_resolver import to_endpoint
from eblocks.discovery.member import Health, Member, MemberStatus
from eblocks.discovery.seeds import read_keys, read_supervisor_seeds, resolve_dns, static_seeds
from eblocks.discovery.stream import FrameError, read_frame, write_frame
from eblocks.discovery.swim import Addr, SwimConfig
from eblocks.discovery.wire import Keyring, Kind, StateUpdate, decode, encode
from eblocks.errors import DiscoveryError, PacketError
from eblocks.spec.models import DiscoverySpec

__all__ = ["ViewResolver", "fetch_view", "mesh_view"]

log = logging.getLogger(__name__)

SeedSource = Callable[[], Awaitable[Sequence[Addr]]]


async def fetch_view(
    addr: Addr, keyring: Keyring, *, within: float = 2.0, max_size: int | None = None
) -> list[Member]:
    """The members ``addr`` knows (its own record included), by one TCP push-pull."""
    limit = max_size or SwimConfig().max_stream
    source = f"client-{os.getpid()}-{random.getrandbits(32):08x}"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(addr[0], addr[1])
            write_frame(writer, encode(keyring, Kind.SYNC, 0, source))
            await writer.drain()
            data = await read_frame(reader, limit)
    except (OSError, TimeoutError, FrameError) as exc:
        raise DiscoveryError(f"gossip member {addr[0]}:{addr[1]}: {exc or 'no answer'}") from exc
    finally:
        if writer is not None:
            writer.close()
    try:
        packet = decode(data, keyring, now=time.monotonic(), max_size=limit)
    except PacketError as exc:
        raise DiscoveryError(f"gossip member {addr[0]}:{addr[1]}: {exc}") from exc
    return [
        Member(u.record, u.status, u.incarnation)
        for u in packet.updates
        if isinstance(u, StateUpdate) and u.record is not None
    ]


class ViewResolver:
    """A :class:`~eblocks._types.Resolver` over a member's view, refreshed in the background."""

    def __init__(
        self, seeds: SeedSource, keyring: Keyring, *, refresh: float = 1.0, timeout: float = 2.0
    ) -> None:
        self._seeds = seeds
        self._keyring = keyring
        self._refresh = refresh
        self._timeout = timeout
        self._view: dict[str, tuple[Endpoint, ...]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    async def __aenter__(self) -> ViewResolver:
        await self.update()
        self._task = asyncio.create_task(self._refresh_loop(), name="gossip-view")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        return self._view.get(block, ())

    def view(self) -> Mapping[str, Sequence[Endpoint]]:
        return dict(self._view)

    async def watch(self) -> AsyncGenerator[Mapping[str, Sequence[Endpoint]], None]:
        last: Mapping[str, Sequence[Endpoint]] | None = None
        while True:
            changed = self._changed
            current = self.view()
            if current != last:
                last = current
                yield current
            else:
                await changed.wait()

    async def update(self) -> None:
        """Ask the seeds, in random order, until one answers; raises DiscoveryError if none does."""
        seeds = list(dict.fromkeys(await self._seeds()))
        if not seeds:
            raise DiscoveryError("no gossip member to ask: no seeds and no running local member")
        self._rng.shuffle(seeds)
        errors = []
        for addr in seeds:
            try:
                members = await fetch_view(addr, self._keyring, within=self._timeout)
            except DiscoveryError as exc:
                errors.append(str(exc))
                continue
            self._set(members)
            return
        raise DiscoveryError("no gossip member answered: " + "; ".join(errors))

    def _set(self, members: list[Member]) -> None:
        listed: dict[str, list[Member]] = {}
        for m in members:
            if m.status.reachable and m.record.health is Health.SERVING:
                listed.setdefault(m.record.block, []).append(m)
        view = {
            block: tuple(to_endpoint(m) for m in sorted(items, key=_order))
            for block, items in sorted(listed.items())
        }
        if view != self._view:
            self._view = view
            self._changed.set()
            self._changed = asyncio.Event()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            try:
                await self.update()
            except DiscoveryError as exc:  # keep the last view; the next round may reach someone
                log.warning("gossip view refresh failed: %s", exc)


def mesh_view(discovery: DiscoverySpec, state_dir: Path, *, refresh: float = 1.0) -> ViewResolver:
    """The view of a gossip mesh for a client on this host: the key from the state dir;
    seeds from the local supervisor's list, the spec's static seeds and its DNS name."""
    keyring = Keyring.from_keys(read_keys(state_dir))

    async def seeds() -> list[Addr]:
        found = list(read_supervisor_seeds(state_dir).values()) + static_seeds(discovery)
        if discovery.dns is not None:
            found += await resolve_dns(discovery.dns, discovery.dns_port)
        return found

    return ViewResolver(seeds, keyring, refresh=refresh)


def _order(member: Member) -> tuple[bool, str]:
    return (member.status is not MemberStatus.ALIVE, member.instance)
