"""An in-process network for :class:`~eblocks.discovery.swim.SwimNode`: delay, loss, partitions.

Everything runs on one :class:`~eblocks.testing.FakeClock` and one seeded RNG,
so a run is reproducible and takes no wall-clock time to wait. Packets are the
real signed bytes; only the socket is simulated.

:func:`simulate` measures what the issue asks of the protocol: time (and
protocol rounds) to converge, time to detect a killed member everywhere, and
packets and bytes per member per second in steady state. Up to
``cold_start_max`` members it starts every node from nothing (each knows one
seed); past that it seeds every view with all members, since a cold start
costs O(N^2) record deliveries, and measures how fast one *joining* member
becomes known to all instead.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from eblocks.discovery.member import MemberRecord, MemberStatus
from eblocks.discovery.swim import Addr, SwimConfig, SwimNode
from eblocks.discovery.viewstore import Directory, View
from eblocks.discovery.wire import Keyring
from eblocks.testing import FakeClock

__all__ = ["NetworkConditions", "SimNetwork", "SimReport", "make_record", "simulate"]

SIM_KEY = b"simulation-gossip-key-0123456789"


@dataclass(frozen=True, slots=True)
class NetworkConditions:
    """One-way delay is ``delay + uniform(0, jitter)``; ``loss`` is the drop probability."""

    delay: float = 0.001
    jitter: float = 0.004
    loss: float = 0.0


class _SimTransport:
    __slots__ = ("_net", "_src")

    def __init__(self, net: SimNetwork, src: Addr) -> None:
        self._net, self._src = net, src

    def send(self, addr: Addr, data: bytes) -> None:
        self._net.deliver(self._src, addr, data)


class SimNetwork:
    """Nodes by address, a queue of timed events, and the rules packets obey."""

    def __init__(
        self,
        *,
        clock: FakeClock | None = None,
        rng: random.Random | None = None,
        conditions: NetworkConditions | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.rng = rng or random.Random(0)
        self.conditions = conditions or NetworkConditions()
        self.nodes: dict[Addr, SwimNode] = {}
        self.directory = Directory()  # member names interned once for every node's view
        self.delivered = 0
        self.lost = 0
        self._events: list[tuple[float, int, Addr, Addr | None, bytes]] = []
        self._scheduled: dict[Addr, float] = {}
        self._group: dict[Addr, int] = {}
        self._cuts: set[frozenset[Addr]] = set()
        self._seq = 0

    def transport(self, addr: Addr) -> _SimTransport:
        return _SimTransport(self, addr)

    def add_node(
        self,
        record: MemberRecord,
        *,
        keyring: Keyring | None = None,
        config: SwimConfig | None = None,
        incarnation: int = 0,
    ) -> SwimNode:
        """Create a node on this network (not started)."""
        node = SwimNode(
            record,
            keyring=keyring or Keyring(SIM_KEY),
            transport=self.transport(record.gossip_addr),
            clock=self.clock,
            rng=random.Random(self.rng.random()),
            config=config,
            incarnation=incarnation,
            directory=self.directory,
        )
        self.nodes[record.gossip_addr] = node
        return node

    def kill(self, addr: Addr) -> SwimNode:
        """Stop a node abruptly (like ``kill -9``): no more packets in or out, no goodbye."""
        self._scheduled.pop(addr, None)
        return self.nodes.pop(addr)

    def partition(self, *groups: Iterable[Addr]) -> None:
        """Only nodes in the same group can talk; nodes in no group form one more group."""
        self._group = {addr: index for index, group in enumerate(groups, 1) for addr in group}

    def heal(self) -> None:
        """Undo :meth:`partition` and every :meth:`cut`."""
        self._group = {}
        self._cuts.clear()

    def cut(self, a: Addr, b: Addr) -> None:
        """Drop every packet between ``a`` and ``b`` (both ways); others still reach both."""
        self._cuts.add(frozenset((a, b)))

    def deliver(self, src: Addr, dst: Addr, data: bytes) -> None:
        cond = self.conditions
        if (
            self._group.get(src, 0) != self._group.get(dst, 0)
            or (self._cuts and frozenset((src, dst)) in self._cuts)
            or (cond.loss and self.rng.random() < cond.loss)
        ):
            self.lost += 1
            return
        when = self.clock.monotonic() + cond.delay + self.rng.random() * cond.jitter
        self._push(when, dst, src, data)

    def wake(self, addr: Addr) -> None:
        """Schedule ``addr``'s next tick if it is earlier than the one already queued."""
        node = self.nodes.get(addr)
        if node is None:
            return
        when = node.next_deadline()
        if when < self._scheduled.get(addr, float("inf")):
            self._scheduled[addr] = when
            self._push(when, addr, None, b"")

    def run(self, seconds: float) -> None:
        """Advance the simulation by ``seconds``."""
        self.run_until(self.clock.monotonic() + seconds)

    def run_until(self, deadline: float) -> None:
        events = self._events
        while events and events[0][0] <= deadline:
            when, _, dst, src, data = heapq.heappop(events)
            self._advance(when)
            node = self.nodes.get(dst)
            if node is None:
                continue
            if src is None:
                if self._scheduled.get(dst) != when:
                    continue  # superseded by an earlier wake-up
                del self._scheduled[dst]
                node.tick()
            else:
                self.delivered += 1
                node.receive(src, data)
            self.wake(dst)
        self._advance(deadline)

    def wait_for(self, done: Callable[[], bool], *, timeout: float, step: float = 0.05) -> float:
        """Run until ``done()`` holds (checked every ``step``); the simulated seconds it took."""
        start = self.clock.monotonic()
        while not done():
            if self.clock.monotonic() - start > timeout:
                raise TimeoutError(f"condition not met within {timeout} simulated seconds")
            self.run(step)
        return self.clock.monotonic() - start

    def _advance(self, when: float) -> None:
        now = self.clock.monotonic()
        if when > now:
            self.clock.advance(when - now)

    def _push(self, when: float, dst: Addr, src: Addr | None, data: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, dst, src, data))


def make_record(index: int, *, block: str = "svc", mesh: str = "sim") -> MemberRecord:
    """A plausible record for simulated member ``index`` (address 10.x.y.z:7946)."""
    host = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
    return MemberRecord(
        mesh=mesh,
        block=block,
        instance=f"{block}-{index}",
        host=host,
        port=8000,
        gossip_port=7946,
        admin_port=9000,
        roles=("worker",),
        identity=f"spiffe://eblocks.local/mesh/{mesh}/block/{block}",
        version="0.1.0",
        labels={"tier": "sim"},
        zone=f"z{index % 3}",
    )


@dataclass(frozen=True, slots=True)
class SimReport:
    """Figures of one :func:`simulate` run (simulated seconds unless said otherwise).

    ``packets_per_member_s`` and ``bytes_per_member_s`` are measured (sent, per
    member) over the steady window; push-pull syncs are rare and jittered, so
    ``sync_bytes_per_member_s`` gives their expected share separately: two full
    states (push and pull) per mean sync period. ``wall_seconds`` is real time.
    """

    members: int
    cold_start: bool
    converge_seconds: float
    converge_rounds: float
    detect_seconds: float
    packets_per_member_s: float
    bytes_per_member_s: float
    sync_bytes_per_member_s: float
    wall_seconds: float

    def as_dict(self) -> dict[str, float | int | bool]:
        return {name: getattr(self, name) for name in self.__slots__}


def simulate(
    n: int,
    *,
    seed: int = 0,
    config: SwimConfig | None = None,
    conditions: NetworkConditions | None = None,
    cold_start_max: int = 100,
    steady_window: float = 10.0,
    settle: float = 3.0,
    timeout: float = 60.0,
) -> SimReport:
    """Run ``n`` members: converge, measure steady traffic, kill one, time its detection."""
    started = time.perf_counter()
    config = config or SwimConfig()
    net = SimNetwork(rng=random.Random(seed), conditions=conditions)
    records = [make_record(i) for i in range(n)]
    cold = n <= cold_start_max
    nodes = [net.add_node(record, config=config) for record in records]
    if cold:
        converge = _cold_start(net, nodes, timeout)
    else:
        converge = _join_one(net, nodes, records, config, timeout)
        nodes = list(net.nodes.values())
    net.run(settle)  # let the joiners' second push-pull pass: steady state, not start-up
    packets, sent = _totals(nodes)
    net.run(steady_window)
    packets2, sent2 = _totals(nodes)
    members = len(nodes)
    sync_bytes = _sync_bytes_per_s(nodes[0], config)
    detect = _kill_one(net, nodes, timeout)
    return SimReport(
        members=members,
        cold_start=cold,
        converge_seconds=round(converge, 3),
        converge_rounds=round(converge / config.probe_interval, 2),
        detect_seconds=round(detect, 3),
        packets_per_member_s=round((packets2 - packets) / members / steady_window, 2),
        bytes_per_member_s=round((sent2 - sent) / members / steady_window, 1),
        sync_bytes_per_member_s=round(sync_bytes, 1),
        wall_seconds=round(time.perf_counter() - started, 2),
    )


def _cold_start(net: SimNetwork, nodes: Sequence[SwimNode], timeout: float) -> float:
    seed_addr = nodes[0].record.gossip_addr
    for node in nodes:
        node.start([seed_addr])
        net.wake(node.record.gossip_addr)
    target = len(nodes) - 1
    return net.wait_for(lambda: all(nd.alive_count == target for nd in nodes), timeout=timeout)


def _join_one(
    net: SimNetwork,
    nodes: Sequence[SwimNode],
    records: Sequence[MemberRecord],
    config: SwimConfig,
    timeout: float,
) -> float:
    template = View.of(net.directory, records, net.clock.monotonic())
    for node in nodes:
        node.seed(template)  # a C-level copy of the template's arrays
        node.start(announce=False)
        net.wake(node.record.gossip_addr)
    net.run(2 * config.probe_interval)
    joiner = net.add_node(make_record(len(records)), config=config)
    joiner.start([net.rng.choice(records).gossip_addr])
    net.wake(joiner.record.gossip_addr)
    name = joiner.record.instance

    def known() -> bool:
        return all(_status(nd, name) is MemberStatus.ALIVE for nd in nodes)

    return net.wait_for(known, timeout=timeout)


def _kill_one(net: SimNetwork, nodes: Sequence[SwimNode], timeout: float) -> float:
    victim = net.kill(net.rng.choice(nodes).record.gossip_addr)
    name = victim.record.instance
    others = [nd for nd in nodes if nd is not victim]

    def gone() -> bool:
        return all(_status(nd, name) in (None, MemberStatus.DEAD) for nd in others)

    return net.wait_for(gone, timeout=timeout)


def _sync_bytes_per_s(node: SwimNode, config: SwimConfig) -> float:
    """Expected push-pull bytes a member sends per second: it starts one and answers one."""
    members = len(node.members())
    state = sum(len(entry) + 1 for entry in node.state_entries())
    packets = state / (config.max_packet - 200) + 1
    mean_period = 0.75 * config.sync_period(members)  # periods are jittered in [0.5, 1.0]
    return 2 * (state + packets * 100) / mean_period


def _status(node: SwimNode, instance: str) -> MemberStatus | None:
    member = node.member(instance)
    return None if member is None else member.status


def _totals(nodes: Iterable[SwimNode]) -> tuple[int, int]:
    packets = sent = 0
    for node in nodes:
        packets += node.counters.packets_sent
        sent += node.counters.bytes_sent
    return packets, sent
