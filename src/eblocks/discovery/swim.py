"""SWIM-style membership as a sans-IO state machine.

:class:`SwimNode` never touches a socket or a timer. The driver (the UDP
:class:`~eblocks.discovery.udp.GossipNode`, or the simulator) feeds it
datagrams with :meth:`SwimNode.receive`, calls :meth:`SwimNode.tick` when
:meth:`SwimNode.next_deadline` is due, and hands it a :class:`GossipTransport`
whose ``send`` it calls. Time comes from the injected clock, randomness from
the injected RNG, so tests replay the protocol exactly.

One protocol period (``probe_interval``):

1. ping the next member of a shuffled round-robin order;
2. no ack within ``probe_timeout``: ask ``indirect_probes`` members to ping it (PING_REQ);
3. still no ack when the next period starts: mark it SUSPECT and gossip that,
   unless this node's own timers ran late meanwhile (a starved process misses
   acks that did arrive: the failure is ours, so the probe is excused);
4. a suspect that does not refute (ALIVE at a higher incarnation) within the
   suspicion timeout becomes DEAD, everywhere the suspicion reached.

Every packet piggybacks queued updates (see :mod:`.broadcast`); a node with
queued updates also sends them to ``gossip_fanout`` random members, at once
when news arrives after an idle spell and then every ``gossip_interval`` while
any is queued (no gossip timer at all while idle), so news spreads in O(log N)
network delays. Joiners and, every ``sync_interval``, every node exchange their
full state with one member (push-pull). Members that join together miss each
other in the seeds' answers, so a joiner push-pulls again after ``join_sync``,
then at doubling delays (``join_syncs`` times at most), and stops as soon as a
re-sync taught it nothing new. A transport that also implements
:class:`StreamTransport` (the UDP driver: TCP on the same port number) carries
a push-pull as one signed message each way over a stream; otherwise (the
simulator) the state goes in datagrams of at most ``max_packet`` bytes.

Members declared DEAD are pinged every ``reconnect_interval`` by some node
with the DEAD rumour attached, so that after a partition heals each side
learns it was declared dead, refutes, and the views merge again.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from eblocks._types import Clock
from eblocks.discovery.broadcast import BroadcastQueue
from eblocks.discovery.member import (
    Load,
    Member,
    MemberRecord,
    MemberStatus,
    load_changed,
    supersedes,
)
from eblocks.discovery.viewstore import Directory, Entry, IdPool, View
from eblocks.discovery.wire import (
    OVERHEAD,
    Keyring,
    Kind,
    LoadUpdate,
    Packet,
    StateUpdate,
    decode,
    encode,
    encode_update,
)
from eblocks.errors import PacketError

__all__ = ["Addr", "Counters", "GossipTransport", "StreamTransport", "SwimConfig", "SwimNode"]

Addr = tuple[str, int]
ALIVE, SUSPECT, DEAD, LEFT = MemberStatus
AUTH_REASONS = frozenset({"unknown_key", "bad_mac"})
_STATE, _LOAD = 0, 1  # broadcast kinds: one queued update of each per member


class GossipTransport(Protocol):
    """Where a node's datagrams go; the driver delivers replies to ``SwimNode.receive``."""

    def send(self, addr: Addr, data: bytes) -> None: ...


@runtime_checkable
class StreamTransport(Protocol):
    """A transport that can also push-pull a full state over a stream (TCP).

    ``push_pull`` sends ``data`` (a signed SYNC) to ``addr``, then hands the
    peer's answer to :meth:`SwimNode.receive_stream`, or calls
    :meth:`SwimNode.stream_failed` when the stream could not be used.
    """

    def send(self, addr: Addr, data: bytes) -> None: ...

    def push_pull(self, addr: Addr, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class SwimConfig:
    """Protocol tunables. Defaults aim at 50 members: converge <= 2 s, detect <= 3 s, <= 2 KB/s.

    The suspicion timeout is ``max(suspicion_min, suspicion_mult * log10(n) * probe_interval)``
    and the push-pull period grows with ``log2(n / 32)`` past 32 members, as in memberlist.
    """

    probe_interval: float = 0.5
    probe_timeout: float = 0.2
    indirect_probes: int = 3
    suspicion_mult: float = 1.5
    suspicion_min: float = 1.0
    gossip_interval: float = 0.1
    gossip_fanout: int = 3
    retransmit_mult: int = 4
    load_retransmit_mult: int = 2
    load_interval: float = 5.0
    sync_interval: float = 30.0
    join_retry: float = 1.0
    join_sync: float = 0.25
    join_syncs: int = 4
    reconnect_interval: float = 2.0
    reap_after: float = 60.0
    max_packet: int = 1400
    max_stream: int = 8 << 20

    def __post_init__(self) -> None:
        for name in ("probe_interval", "probe_timeout", "gossip_interval", "suspicion_min"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SwimConfig.{name} must be > 0")
        if self.probe_timeout >= self.probe_interval:
            raise ValueError("SwimConfig.probe_timeout must be shorter than probe_interval")
        if self.max_stream < self.max_packet:
            raise ValueError("SwimConfig.max_stream must be at least max_packet")
        if self.max_packet < 512:
            raise ValueError("SwimConfig.max_packet must be at least 512 bytes")
        if self.join_sync <= 0 or self.join_syncs < 0:
            raise ValueError("SwimConfig.join_sync must be > 0 and join_syncs >= 0")
        if self.gossip_fanout < 1 or self.retransmit_mult < 1:
            raise ValueError("SwimConfig.gossip_fanout and retransmit_mult must be >= 1")

    def suspicion_timeout(self, members: int) -> float:
        scaled = self.suspicion_mult * math.log10(max(members, 10)) * self.probe_interval
        return max(self.suspicion_min, scaled)

    def sync_period(self, members: int) -> float:
        """The period of this node's push-pull; it grows past 32 members to bound the bytes."""
        if members <= 32:
            return self.sync_interval
        return self.sync_interval * (math.ceil(math.log2(members) - 5) + 1)


@dataclass(slots=True)
class Counters:
    """What a node sent and received; ``dropped`` counts rejected packets by reason."""

    packets_sent: int = 0
    packets_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    streams_sent: int = 0
    streams_received: int = 0
    stream_failures: int = 0
    probes_excused: int = 0  # failed probes not held against the target: this node ran late
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_auth(self) -> int:
        """Packets whose key or MAC failed: forged, or from a node without the key."""
        return sum(n for reason, n in self.dropped.items() if reason in AUTH_REASONS)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    acked: bool = False


class SwimNode:
    """One member's side of the protocol: its own record and its view of the others."""

    def __init__(
        self,
        record: MemberRecord,
        *,
        keyring: Keyring,
        transport: GossipTransport,
        clock: Clock,
        rng: random.Random,
        config: SwimConfig | None = None,
        incarnation: int = 0,
        directory: Directory | None = None,
    ) -> None:
        self.config = config or SwimConfig()
        self.counters = Counters()
        self._me = record
        self._incarnation = incarnation
        self._keyring = keyring
        self._transport = transport
        self._stream = transport if isinstance(transport, StreamTransport) else None
        self._clock = clock
        self._rng = rng
        # the view: compact arrays by member id (see .viewstore); a simulator shares `directory`
        self._members = View(Directory() if directory is None else directory)
        self._names = self._members.directory.names
        self._reachable = IdPool()  # ALIVE and SUSPECT: probed and gossiped to
        self._dead = IdPool()  # DEAD (not LEFT): pinged now and then to heal partitions
        self._alive_count = 0
        self._queue = BroadcastQueue()
        self._timers: list[tuple[float, int, str, object]] = []
        self._timer_seq = 0
        self._seq = 0
        self._probe: _Probe | None = None
        self._order = array("i")  # this round's probe order, shuffled as it is consumed
        self._order_at = 0
        self._relays: dict[int, tuple[Addr, int]] = {}
        self._asked: dict[str, float] = {}  # unknown senders we pushed our state to, until when
        self._seeds: tuple[Addr, ...] = ()
        self._listeners: list[Callable[[Member], None]] = []
        self._load = record.load
        self._started = False
        self._leaving = False
        self._late_until = -math.inf
        self._gossip_armed = False  # the gossip timer runs only while updates are queued
        self._learned = 0  # members added to the view so far (a join re-sync stops without news)
        self._join_syncs = 0  # join re-syncs still to do

    # -- public view ---------------------------------------------------------

    @property
    def record(self) -> MemberRecord:
        return self._me

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def alive_count(self) -> int:
        """How many *other* members this node sees ALIVE."""
        return self._alive_count

    @property
    def reachable_count(self) -> int:
        """How many *other* members this node sees ALIVE or SUSPECT (still routed to)."""
        return len(self._reachable)

    @property
    def leaving(self) -> bool:
        return self._leaving

    @property
    def keyring(self) -> Keyring:
        """The gossip keys; update it in place to rotate (see :meth:`Keyring.update`)."""
        return self._keyring

    @property
    def clock(self) -> Clock:
        """The clock the view's ``since``/``last_seen`` stamps come from."""
        return self._clock

    @property
    def current_load(self) -> Load:
        """The load last given to :meth:`set_load` (the gossiped one lags behind)."""
        return self._load

    def me(self) -> Member:
        status = LEFT if self._leaving else ALIVE
        return Member(self._me, status, self._incarnation, 0.0, self._clock.monotonic())

    def members(self) -> list[Member]:
        """This node's view, itself included, DEAD and LEFT members too (until reaped)."""
        return [self.me(), *(st.snapshot() for st in self._members.entries())]

    def member(self, instance: str) -> Member | None:
        if instance == self._me.instance:
            return self.me()
        st = self._members.get(instance)
        return None if st is None else st.snapshot()

    def subscribe(self, listener: Callable[[Member], None]) -> Callable[[], None]:
        """Call ``listener(member)`` after each change of the view; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- lifecycle -----------------------------------------------------------

    def start(self, seeds: Iterable[Addr] = (), *, announce: bool = True) -> None:
        """Begin probing; push-pull with every seed; gossip our own ALIVE unless told not to."""
        now = self._clock.monotonic()
        cfg = self.config
        self._started = True
        self._seeds = tuple(addr for addr in seeds if addr != self._me.gossip_addr)
        if announce:
            self._broadcast_self()
        self._at(now + self._rng.uniform(0, cfg.probe_interval), "probe")
        self._at(now + self._jitter(cfg.sync_period(len(self._members) + 1)), "sync")
        self._at(now + self._jitter(cfg.load_interval), "load")
        self._at(now + self._jitter(cfg.reconnect_interval), "reconnect")
        if self._seeds:
            self._join()

    def join(self, seeds: Iterable[Addr]) -> None:
        """Push-pull with each of ``seeds`` now, and remember them for later re-joins.

        For seeds learnt after :meth:`start` (a DNS answer, the local
        supervisor's list of started instances); safe to call repeatedly.
        """
        if not self._started or self._leaving:
            return
        fresh = tuple(addr for addr in seeds if addr != self._me.gossip_addr)
        unseen = not set(fresh) <= set(self._seeds)
        self._seeds = tuple(dict.fromkeys((*self._seeds, *fresh)))
        for addr in fresh:
            self._send_state(addr, Kind.SYNC)
        if unseen:  # a seed retried every second (one still down) starts no re-syncs
            self._begin_join_syncs()

    def seed(self, records: Iterable[MemberRecord] | View) -> None:
        """Put ``records`` in the view as ALIVE without gossip (simulation).

        Given a :class:`View` of the same directory (every member ALIVE), an empty
        view is copied from it wholesale: how the simulator seeds thousands of nodes.
        """
        now = self._clock.monotonic()
        if isinstance(records, View) and not len(self._members):
            self._members.copy_from(records, now)
            self._reachable = records.pool()
            me = self._members.directory.find(self._me.instance)
            self._members.remove(self._me.instance)
            self._reachable.discard(me)
            self._alive_count = len(self._members)
            return
        for record in records.records() if isinstance(records, View) else records:
            if record.instance != self._me.instance and record.instance not in self._members:
                st = self._members.add(record, ALIVE, 0, now)
                self._reachable.add(st.id)
                self._alive_count += 1

    def leave(self) -> None:
        """Announce LEFT to several members at once; probing stops, gossip goes on."""
        if self._leaving:
            return
        self._leaving = True
        update = StateUpdate(LEFT, self._me.instance, self._incarnation)
        self._push(update)
        for instance in self._sample(self._reachable, 2 * self.config.gossip_fanout):
            self._send(self._addr(instance), Kind.GOSSIP, 0)
        self._notify()

    def update_record(self, **changes: object) -> None:
        """Publish a changed own record (health, labels, ...) under a higher incarnation."""
        self._me = dataclasses.replace(self._me, **changes)  # type: ignore[arg-type]
        self._incarnation += 1
        self._broadcast_self()
        self._notify()

    def set_load(self, inflight: int, ewma_ms: float, queue: int) -> None:
        """Record the current load; it is gossiped every ``load_interval`` if it moved enough."""
        self._load = Load(inflight, ewma_ms, queue, self._load.seq)

    # -- driver interface ----------------------------------------------------

    def next_deadline(self) -> float:
        """When :meth:`tick` next has work (``inf`` before :meth:`start`)."""
        return self._timers[0][0] if self._timers else math.inf

    def tick(self) -> None:
        """Run every timer that is due on the clock."""
        now = self._clock.monotonic()
        while self._timers and self._timers[0][0] <= now:
            when, _, kind, arg = heapq.heappop(self._timers)
            if now - when > self.config.probe_timeout:
                # we ran late (a starved process): a missing ack may be our fault, not the peer's
                self._late_until = now + self.config.probe_interval
            getattr(self, f"_on_{kind}")(arg)

    def receive(self, addr: Addr, data: bytes) -> None:
        """Handle one datagram from ``addr``; bad packets are counted and dropped."""
        self.counters.packets_received += 1
        self.counters.bytes_received += len(data)
        packet = self._decode(data, self.config.max_packet)
        if packet is not None:
            self._handle(packet, addr)

    def receive_stream(self, addr: Addr, data: bytes) -> bytes | None:
        """Handle one push-pull message from a stream; a SYNC gets our state to send back.

        Returns the answer (``b""``: none), or ``None`` when the message failed
        authentication or parsing: it is counted and dropped like a bad datagram.
        """
        self.counters.streams_received += 1
        self.counters.bytes_received += len(data)
        packet = self._decode(data, self.config.max_stream)
        if packet is None:
            return None
        if packet.source == self._me.instance or packet.kind not in (Kind.SYNC, Kind.SYNC_REPLY):
            return b""
        self._apply_state_message(packet)
        if packet.kind is Kind.SYNC and not self._leaving:
            reply = self.state_message(Kind.SYNC_REPLY)
            self.counters.bytes_sent += len(reply)
            return reply
        return b""

    def stream_failed(self, addr: Addr) -> None:
        """The stream to ``addr`` failed: fall back to a push-pull in datagrams."""
        self.counters.stream_failures += 1
        self._send_state_datagrams(addr, Kind.SYNC)

    def _decode(self, data: bytes, max_size: int) -> Packet | None:
        try:
            return decode(data, self._keyring, now=self._clock.monotonic(), max_size=max_size)
        except PacketError as exc:
            self.counters.dropped[exc.reason] = self.counters.dropped.get(exc.reason, 0) + 1
            return None

    def _handle(self, packet: Packet, addr: Addr) -> None:
        if packet.source == self._me.instance:
            return
        now = self._clock.monotonic()
        sender = self._members.get(packet.source)
        if sender is not None:
            sender.last_seen = now
        elif packet.kind is Kind.PING and now >= self._asked.get(packet.source, 0.0):
            # a member that knows us but we do not know it: our views diverged, push-pull now
            self._asked[packet.source] = now + self.config.sync_interval
            self._send_state(addr, Kind.SYNC)
        if packet.kind in (Kind.SYNC, Kind.SYNC_REPLY):
            self._apply_state_message(packet)
        else:
            for update in packet.updates:
                self._apply(update, rebroadcast=True)
        self._dispatch(packet, addr)

    def _apply_state_message(self, packet: Packet) -> None:
        """Merge a full state; it is not re-gossiped, except the sender's own entry
        (that is how a join spreads)."""
        sender = self._members.get(packet.source)
        if sender is not None:
            sender.last_seen = self._clock.monotonic()
        for update in packet.updates:
            self._apply(update, rebroadcast=update.instance == packet.source)

    # -- packet handling -----------------------------------------------------

    def _dispatch(self, packet: Packet, addr: Addr) -> None:
        kind = packet.kind
        if kind is Kind.PING:
            if packet.target == self._me.instance:
                self._send(addr, Kind.ACK, packet.seq)
        elif kind is Kind.ACK:
            self._on_ack(packet.seq)
        elif kind is Kind.PING_REQ and packet.target_addr is not None:
            seq = self._next_seq()
            self._relays[seq] = (addr, packet.seq)
            self._send(packet.target_addr, Kind.PING, seq, target=packet.target)
            self._at(self._clock.monotonic() + self.config.probe_interval, "relay_expire", seq)
        elif kind is Kind.SYNC and packet.seq == 0:
            self._send_state(addr, Kind.SYNC_REPLY)

    def _on_ack(self, seq: int) -> None:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            probe.acked = True
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self._send(relay[0], Kind.ACK, relay[1])

    def _apply(self, update: StateUpdate | LoadUpdate, *, rebroadcast: bool) -> None:
        if isinstance(update, LoadUpdate):
            self._apply_load(update, rebroadcast=rebroadcast)
        elif update.instance == self._me.instance:
            self._about_me(update)
        else:
            self._apply_state(update, rebroadcast=rebroadcast)

    def _about_me(self, update: StateUpdate) -> None:
        if self._leaving:
            return
        if supersedes(update.status, update.incarnation, ALIVE, self._incarnation):
            # a rumour about us (suspect, dead, or a stale record from before a restart)
            self._incarnation = update.incarnation + 1
            self._broadcast_self()

    def _apply_state(self, update: StateUpdate, *, rebroadcast: bool) -> None:
        now = self._clock.monotonic()
        if update.status is ALIVE and update.record is None:
            return  # ALIVE always travels with the record it vouches for
        st = self._members.get(update.instance)
        if st is None:
            if update.record is None:
                return  # a rumour about a member we never saw: wait for its ALIVE
            st = self._members.add(update.record, update.status, update.incarnation, now)
            self._learned += 1
            self._count(st, +1)
        elif supersedes(update.status, update.incarnation, st.status, st.incarnation):
            self._count(st, -1)
            if update.record is not None:
                st.record = _newer_load(update.record, st.record)
            st.status, st.incarnation, st.since = update.status, update.incarnation, now
            self._count(st, +1)
        else:
            if update.record is not None and update.record.load.seq > st.record.load.seq:
                st.record = dataclasses.replace(st.record, load=update.record.load)
            return
        if st.status is SUSPECT:
            st.suspect_until = now + self.config.suspicion_timeout(len(self._reachable) + 1)
            self._at(st.suspect_until, "suspect_timeout", update.instance)
        elif st.status is not ALIVE:
            self._at(now + self.config.reap_after, "reap", update.instance)
        if rebroadcast:
            record = st.record if st.status is ALIVE else None
            self._push(StateUpdate(st.status, update.instance, st.incarnation, record))
        self._notify(st)

    def _apply_load(self, update: LoadUpdate, *, rebroadcast: bool) -> None:
        st = self._members.get(update.instance)
        if st is None or update.load.seq <= st.record.load.seq:
            return
        st.record = dataclasses.replace(st.record, load=update.load)
        if rebroadcast:
            self._push(update)
        self._notify(st)

    def _count(self, st: Entry, sign: int) -> None:
        """Keep the pools and the ALIVE count in step as ``st`` leaves (-1) or enters (+1)."""
        instance = st.id
        if st.status is ALIVE:
            self._alive_count += sign
        if sign < 0:
            self._reachable.discard(instance)
            self._dead.discard(instance)
        elif st.status.reachable:
            self._reachable.add(instance)
        elif st.status is DEAD:
            self._dead.add(instance)

    # -- timers --------------------------------------------------------------

    def _on_probe(self, _: object) -> None:
        now = self._clock.monotonic()
        self._at(now + self.config.probe_interval, "probe")
        self._finish_probe()
        if self._leaving:
            return
        target = self._next_target()
        if target is None:
            return
        self._probe = _Probe(self._next_seq(), target)
        self._send(self._addr(target), Kind.PING, self._probe.seq, target=target)
        self._at(now + self.config.probe_timeout, "indirect", self._probe.seq)

    def _finish_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is None or probe.acked:
            return
        st = self._members.get(probe.target)
        if st is not None and st.status is ALIVE:
            if self._clock.monotonic() < self._late_until:
                self.counters.probes_excused += 1  # local health first, as in Lifeguard
                return
            self._apply_state(StateUpdate(SUSPECT, probe.target, st.incarnation), rebroadcast=True)

    def _on_indirect(self, seq: object) -> None:
        probe = self._probe
        if probe is None or probe.seq != seq or probe.acked:
            return
        target_addr = self._addr(probe.target)
        helpers = self._sample(self._reachable, self.config.indirect_probes + 1, probe.target)
        for helper in helpers[: self.config.indirect_probes]:
            self._send(
                self._addr(helper),
                Kind.PING_REQ,
                probe.seq,
                target=probe.target,
                target_addr=target_addr,
            )

    def _on_relay_expire(self, seq: object) -> None:
        self._relays.pop(seq, None)  # type: ignore[call-overload]

    def _on_suspect_timeout(self, instance: object) -> None:
        st = self._members.get(str(instance))
        if st is None or st.status is not SUSPECT:
            return
        if self._clock.monotonic() >= st.suspect_until:
            self._apply_state(StateUpdate(DEAD, str(instance), st.incarnation), rebroadcast=True)

    def _on_reap(self, instance: object) -> None:
        st = self._members.get(str(instance))
        if st is None or st.status.reachable:
            return
        if self._clock.monotonic() - st.since >= self.config.reap_after:
            self._dead.discard(st.id)
            self._asked.pop(str(instance), None)
            self._members.remove(str(instance))

    def _on_gossip(self, _: object) -> None:
        self._gossip_armed = False
        if not len(self._queue):
            return  # idle: no timer until the next update is queued
        self._arm_gossip(self.config.gossip_interval)
        for instance in self._sample(self._reachable, self.config.gossip_fanout):
            self._send(self._addr(instance), Kind.GOSSIP, 0)

    def _on_sync(self, _: object) -> None:
        period = self.config.sync_period(len(self._members) + 1)
        self._at(self._clock.monotonic() + self._jitter(period), "sync")
        picked = self._sample(self._reachable, 1)
        if picked and not self._leaving:
            self._send_state(self._addr(picked[0]), Kind.SYNC)

    def _on_join(self, _: object) -> None:
        if self._alive_count == 0 and not self._leaving:
            self._join()

    def _join(self) -> None:
        for addr in self._seeds:
            self._send_state(addr, Kind.SYNC)
        self._at(self._clock.monotonic() + self.config.join_retry, "join")
        self._begin_join_syncs()

    def _begin_join_syncs(self) -> None:
        """Push-pull again soon: members that joined at the same moment were missing from
        the seeds' answers. The delay doubles; the re-syncs stop once one taught nothing."""
        if self._join_syncs == 0 and self.config.join_syncs > 0:
            self._join_syncs = self.config.join_syncs
            self._at(self._clock.monotonic() + self.config.join_sync, "join_sync", (1, -1))

    def _on_join_sync(self, arg: object) -> None:
        assert isinstance(arg, tuple)
        step, learned_before = int(arg[0]), int(arg[1])
        if self._leaving or self._learned == learned_before:
            self._join_syncs = 0  # the last re-sync brought nothing new: the view is whole
            return
        self._join_syncs -= 1
        # the first re-sync asks a seed (every joiner went through one); later ones ask a
        # random member, so that a crowd of joiners does not queue at the seeds
        picked = self._sample(self._reachable, 1)
        if self._seeds and (step == 1 or not picked):
            self._send_state(self._seeds[self._rng.randrange(len(self._seeds))], Kind.SYNC)
        elif picked:
            self._send_state(self._addr(picked[0]), Kind.SYNC)
        if self._join_syncs > 0:
            delay = self.config.join_sync * 2**step
            self._at(self._clock.monotonic() + delay, "join_sync", (step + 1, self._learned))

    def _on_load(self, _: object) -> None:
        self._at(self._clock.monotonic() + self._jitter(self.config.load_interval), "load")
        published = self._me.load
        if self._leaving or not load_changed(published, self._load):
            return
        load = dataclasses.replace(self._load, seq=published.seq + 1)
        self._me = dataclasses.replace(self._me, load=load)
        self._load = load
        self._push(LoadUpdate(self._me.instance, load))

    def _on_reconnect(self, _: object) -> None:
        self._at(
            self._clock.monotonic() + self._jitter(self.config.reconnect_interval), "reconnect"
        )
        picked = self._sample(self._dead, 1)
        st = self._members.get(picked[0]) if picked else None
        if st is None or self._leaving:
            return
        rumour = encode_update(StateUpdate(DEAD, picked[0], st.incarnation))
        addr, seq = self._addr(picked[0]), self._next_seq()
        self._send(addr, Kind.PING, seq, target=picked[0], extra=[rumour])

    # -- sending -------------------------------------------------------------

    def _send(
        self,
        addr: Addr,
        kind: Kind,
        seq: int,
        *,
        target: str = "",
        target_addr: Addr | None = None,
        extra: Sequence[bytes] = (),
    ) -> None:
        budget = self.config.max_packet - OVERHEAD - 64 - len(target) - len(self._me.instance)
        budget -= sum(len(item) + 1 for item in extra)
        updates = [*extra, *self._queue.take(budget, len(self._members) + 1)]
        data = encode(
            self._keyring, kind, seq, self._me.instance, updates,
            target=target, target_addr=target_addr,
        )  # fmt: skip
        self._emit(addr, data)

    def state_entries(self) -> list[bytes]:
        """This node's full state as encoded updates, as a push-pull sends it."""
        entries = [
            encode_update(StateUpdate(ALIVE, self._me.instance, self._incarnation, self._me))
        ]
        for st in self._members.entries():
            entries.append(
                encode_update(StateUpdate(st.status, st.instance, st.incarnation, st.record))
            )
        return entries

    def state_message(self, kind: Kind) -> bytes:
        """Our full state as one signed message, as a stream push-pull carries it."""
        return encode(self._keyring, kind, 0, self._me.instance, self.state_entries())

    def _send_state(self, addr: Addr, kind: Kind) -> None:
        """Push-pull with ``addr``: over a stream when the transport has one."""
        if kind is Kind.SYNC and self._stream is not None:
            data = self.state_message(kind)
            self.counters.streams_sent += 1
            self.counters.bytes_sent += len(data)
            self._stream.push_pull(addr, data)
        else:
            self._send_state_datagrams(addr, kind)

    def _send_state_datagrams(self, addr: Addr, kind: Kind) -> None:
        """Our full state, in as many packets as it takes; chunk 0 asks for a reply."""
        entries = self.state_entries()
        budget = self.config.max_packet - OVERHEAD - 64 - len(self._me.instance)
        chunk: list[bytes] = []
        size, index = 0, 0
        for entry in entries:
            if chunk and size + len(entry) + 1 > budget:
                self._emit(addr, encode(self._keyring, kind, index, self._me.instance, chunk))
                chunk, size, index = [], 0, index + 1
            chunk.append(entry)
            size += len(entry) + 1
        self._emit(addr, encode(self._keyring, kind, index, self._me.instance, chunk))

    def _emit(self, addr: Addr, data: bytes) -> None:
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(data)
        self._transport.send(addr, data)

    # -- helpers -------------------------------------------------------------

    def _broadcast_self(self) -> None:
        self._push(StateUpdate(ALIVE, self._me.instance, self._incarnation, self._me))

    def _push(self, update: StateUpdate | LoadUpdate) -> None:
        if isinstance(update, LoadUpdate):
            kind, mult = _LOAD, self.config.load_retransmit_mult
        else:
            kind, mult = _STATE, self.config.retransmit_mult
        self._queue.push(update.instance, kind, encode_update(update), limit_mult=mult)
        self._arm_gossip()

    def _arm_gossip(self, delay: float = 0.0) -> None:
        """Gossip after ``delay``: news after an idle spell goes out at once (fresh news
        spreads one network delay a hop), then every ``gossip_interval`` while any is queued."""
        if self._started and not self._gossip_armed:
            self._gossip_armed = True
            self._at(self._clock.monotonic() + delay, "gossip")

    def _notify(self, st: Entry | None = None) -> None:
        """Tell listeners about a changed member (``None``: this node's own record)."""
        if self._listeners:
            member = self.me() if st is None else st.snapshot()
            for listener in list(self._listeners):
                listener(member)

    def _next_target(self) -> str | None:
        """The next member of a shuffled round-robin order (Fisher-Yates, one step a probe)."""
        for _ in range(2):
            order = self._order
            while self._order_at < len(order):
                at = self._order_at
                pick = self._rng.randrange(at, len(order))
                order[at], order[pick] = order[pick], order[at]
                self._order_at += 1
                if order[at] in self._reachable:
                    return self._names[order[at]]
            self._order, self._order_at = self._reachable.snapshot(), 0  # a new round
        return None

    def _sample(self, pool: IdPool, k: int, exclude: str = "") -> list[str]:
        """Up to ``k`` distinct members of ``pool`` picked at random, by name."""
        skip = self._members.directory.find(exclude) if exclude else -1
        return [self._names[ident] for ident in pool.sample(self._rng, k, skip)]

    def _addr(self, instance: str) -> Addr:
        st = self._members.get(instance)
        assert st is not None, instance
        return st.record.gossip_addr

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _jitter(self, period: float) -> float:
        return period * self._rng.uniform(0.5, 1.0)

    def _at(self, when: float, kind: str, arg: object = None) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, kind, arg))


def _newer_load(record: MemberRecord, old: MemberRecord) -> MemberRecord:
    if old.load.seq > record.load.seq:
        return dataclasses.replace(record, load=old.load)
    return record
