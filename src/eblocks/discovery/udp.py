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
from eblocks.discovery.stream import StreamPushPull
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
    """Datagrams over an asyncio datagram transport; push-pulls over TCP (a ``StreamTransport``)."""

    __slots__ = ("_streams", "_transport", "send_errors")

    def __init__(self, transport: asyncio.DatagramTransport, streams: StreamPushPull) -> None:
        self._transport = transport
        self._streams = streams
        self.send_errors = 0

    def push_pull(self, addr: Addr, data: bytes) -> None:
        self._streams.push_pull(addr, data)

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
    Push-pulls go over TCP on the same port number (see :mod:`.stream`).
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
        self._streams: StreamPushPull | None = None
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
        """Bind UDP and TCP on one port number, join through the seeds, start the loop."""
        transport, streams = await self._bind()
        self._streams = streams
        self._transport = UdpTransport(transport, streams)
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

    async def aclose(self, *, graceful: bool = True) -> None:
        """Leave gracefully (unless told not to: a crash, as peers see it), then stop the
        loop and close the sockets."""
        try:
            if graceful:
                await self.leave()
        finally:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
            if self._streams is not None:
                await self._streams.aclose()
                self._streams = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None

    async def _bind(self) -> tuple[asyncio.DatagramTransport, StreamPushPull]:
        """UDP and TCP on the same port; with port 0, retry until a free number fits both."""
        loop = asyncio.get_running_loop()
        port = self._record.gossip_port
        error: OSError | None = None
        for _ in range(1 if port else 20):
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self._on_datagram), local_addr=(self._bind_host, port)
                )
            except OSError as exc:
                error = exc
                break
            bound = int(transport.get_extra_info("sockname")[1])
            streams = StreamPushPull(lambda: self._node, wake=self._wake.set)
            try:
                await streams.listen(self._bind_host, bound)
            except OSError as exc:
                transport.close()
                error = exc
                continue
            return transport, streams
        where = f"{self._bind_host}:{port}"
        raise DiscoveryError(f"cannot bind gossip socket {where}: {error}") from error

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
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # races with the event (a datagram), and aclose() would wait forever
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
