"""Gossip over UDP: an asyncio datagram transport and the :class:`GossipNode` that drives a node.

``GossipNode`` binds the socket, feeds datagrams to its
:class:`~eblocks.discovery.swim.SwimNode`, runs the node's timers on the real
clock, and on exit announces LEFT, lets the news spread for ``leave_drain``
seconds and closes the socket::

    async with GossipNode(record, keyring=Keyring(key), seeds=[("10.0.0.2", 7946)]) as gossip:
        resolver = GossipResolver(gossip.node)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from eblocks._types import Clock, SystemClock
from eblocks.discovery.member import MemberRecord
from eblocks.discovery.swim import Addr, SwimConfig, SwimNode
from eblocks.discovery.wire import Keyring
from eblocks.errors import DiscoveryError

__all__ = ["GossipNode", "UdpTransport"]

log = logging.getLogger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[Addr, bytes], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        self._on_datagram((str(addr[0]), int(addr[1])), data)  # IPv6 adds flowinfo, scope

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable from a dead peer: the probe timeout already covers it


class UdpTransport:
    """A :class:`~eblocks.discovery.swim.GossipTransport` over an asyncio datagram transport."""

    __slots__ = ("_transport", "send_errors")

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        self.send_errors = 0

    def send(self, addr: Addr, data: bytes) -> None:
        try:
            self._transport.sendto(data, addr)
        except OSError:
            self.send_errors += 1  # unreachable network: a lost datagram, as UDP allows

    def close(self) -> None:
        self._transport.close()


class GossipNode:
    """A SWIM node on a UDP socket, as an async context manager.

    A ``gossip_port`` of 0 in ``record`` binds an ephemeral port and publishes it.
    """

    def __init__(
        self,
        record: MemberRecord,
        *,
        keyring: Keyring,
        seeds: Iterable[Addr] = (),
        config: SwimConfig | None = None,
        bind_host: str | None = None,
        incarnation: int = 0,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        leave_drain: float = 0.3,
    ) -> None:
        self._record = record
        self._keyring = keyring
        self._seeds = tuple(seeds)
        self._config = config or SwimConfig()
        self._bind_host = bind_host or record.host
        self._incarnation = incarnation
        self._rng = rng or random.Random()
        self._clock = clock or SystemClock()
        self._leave_drain = leave_drain
        self._transport: UdpTransport | None = None
        self._node: SwimNode | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def node(self) -> SwimNode:
        if self._node is None:
            raise DiscoveryError("GossipNode is not started; use 'async with'")
        return self._node

    @property
    def addr(self) -> Addr:
        return self.node.record.gossip_addr

    async def __aenter__(self) -> GossipNode:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind, join through the seeds, and start the protocol loop."""
        loop = asyncio.get_running_loop()
        local = (self._bind_host, self._record.gossip_port)
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self._on_datagram), local_addr=local
            )
        except OSError as exc:
            raise DiscoveryError(f"cannot bind gossip socket {local[0]}:{local[1]}: {exc}") from exc
        self._transport = UdpTransport(transport)
        record = self._record
        if record.gossip_port == 0:
            record = dataclasses.replace(
                record, gossip_port=transport.get_extra_info("sockname")[1]
            )
        self._node = SwimNode(
            record,
            keyring=self._keyring,
            transport=self._transport,
            clock=self._clock,
            rng=self._rng,
            config=self._config,
            incarnation=self._incarnation,
        )
        self._node.start(self._seeds)
        self._task = asyncio.create_task(self._run(), name=f"gossip-{record.instance}")

    async def leave(self) -> None:
        """Announce LEFT and keep gossiping for ``leave_drain`` seconds."""
        if self._node is not None and self._task is not None and not self._node.leaving:
            self._node.leave()
            self._wake.set()
            await self._clock.sleep(self._leave_drain)

    async def aclose(self) -> None:
        """Leave gracefully, then stop the loop and close the socket."""
        try:
            await self.leave()
        finally:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None

    def _on_datagram(self, addr: Addr, data: bytes) -> None:
        if self._node is not None:
            self._node.receive(addr, data)
            self._wake.set()  # the packet may have added an earlier timer

    async def _run(self) -> None:
        node = self.node
        while True:
            try:
                node.tick()
            except Exception:  # a bug in one timer must not silence this member for good
                log.exception("gossip node %s: timer failed", node.record.instance)
            delay = node.next_deadline() - self._clock.monotonic()
            self._wake.clear()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
