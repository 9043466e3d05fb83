"""An instance's membership in its mesh: the resolver its client uses and ``/v1/members``.

In ``discovery.mode: supervisor`` (the default) an instance resolves through
the file the local supervisor writes. In ``gossip`` mode it runs a
:class:`~eblocks.discovery.GossipNode` next to its servers, publishes its
record (block, instance, ports, labels, health, in-flight load) and resolves
through its own gossip view; seeds come from the spec (static, DNS) and from
the local supervisor's list of started instances. Its record carries the
version of the policies in force, republished on every swap, so that peers
behind fetch the new bundle (`eblocks.policies.sync`). On shutdown it
announces LEFT first, so no new request is routed to it while it drains::

    SIGTERM -> gossip LEFT (leave_drain) -> drain the servers -> close the socket

A restarted instance starts at a higher incarnation (seconds since an epoch),
so its new record wins over whatever its previous life published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from eblocks._types import Endpoint, Resolver
from eblocks.block import Block
from eblocks.discovery import GossipNode, GossipResolver, Keyring, MemberRecord, SupervisorResolver
from eblocks.discovery.member import MemberStatus, member_id
from eblocks.discovery.seeds import (
    KEY_FILE,
    read_keys,
    read_supervisor_seeds,
    resolve_dns,
    static_seeds,
)
from eblocks.discovery.swim import Addr
from eblocks.discovery.view import counters_row, endpoint_rows, member_rows
from eblocks.discovery.wire import key_id_of
from eblocks.errors import DiscoveryError
from eblocks.policies import PolicyState
from eblocks.policies.sync import Peer
from eblocks.runtime.state import StateDir
from eblocks.spec import MeshSpec
from eblocks.telemetry import Hooks

__all__ = ["INCARNATION_EPOCH", "DeferredResolver", "Membership", "roles_of"]

log = logging.getLogger("eblocks.membership")

KEY_SETTLE = 3.0
"""Seconds a rotated-in gossip key is only accepted before it signs (every member re-reads
``gossip.key`` each second: three rounds of that)."""

INCARNATION_EPOCH = 1_700_000_000
"""Incarnations start at wall-clock seconds since this epoch (Nov 2023)."""


def roles_of(spec: MeshSpec, block: str) -> tuple[str, ...]:
    """The roles ``block`` plays in the spec's patterns (``filter`` for a pipeline stage)."""
    for pattern in spec.patterns.values():
        if block in getattr(pattern, "pipeline", ()):
            return ("filter",)
    return ()


class DeferredResolver:
    """A :class:`~eblocks._types.Resolver` that answers nothing until its target is set.

    The mesh client is built before the servers bind, the gossip node after.
    """

    def __init__(self) -> None:
        self.target: Resolver | None = None
        self._set = asyncio.Event()

    def set(self, target: Resolver) -> None:
        self.target = target
        self._set.set()

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        return self.target.endpoints(block) if self.target is not None else ()

    async def watch(self) -> AsyncIterator[Mapping[str, Sequence[Endpoint]]]:
        await self._set.wait()
        assert self.target is not None  # set before the event
        async for view in self.target.watch():
            yield view


class Membership:
    """The discovery side of one instance process, for either mode."""

    def __init__(self, spec: MeshSpec, state: StateDir, block: str, instance: str) -> None:
        self.spec = spec
        self.state = state
        self.block = block
        self.instance = instance
        self.gossip_mode = spec.discovery.mode == "gossip"
        self.resolver: Resolver
        self._deferred = DeferredResolver()
        if self.gossip_mode:
            self.resolver = self._deferred
        else:
            self._files = SupervisorResolver(state.path)
            self.resolver = self._files
        self.gossip: GossipNode | None = None
        self._gossip_resolver: GossipResolver | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._keyring: Keyring | None = None
        self._key_stamp: tuple[int, int] | None = None
        self._pending_keys: tuple[list[bytes], float] | None = None  # (keys, when they sign)

    @property
    def gossip_port(self) -> int:
        return self.gossip.addr[1] if self.gossip is not None else 0

    async def start(self, block: Block, host: str) -> None:
        """Join the gossip (gossip mode; raises DiscoveryError when the socket cannot bind)."""
        if not self.gossip_mode:
            return
        discovery = self.spec.discovery
        block_spec = self.spec.blocks[self.block]
        self._key_stamp = self._key_file_stamp()
        self._keyring = Keyring.from_keys(read_keys(self.state.path))
        record = MemberRecord(
            mesh=self.spec.mesh,
            block=self.block,
            instance=member_id(self.instance, host),
            host=host,
            port=block.port,
            gossip_port=discovery.port,
            admin_port=block.admin_port,
            roles=roles_of(self.spec, self.block),
            labels=dict(block_spec.labels),
            zone=block_spec.labels.get("zone", ""),
            policy_version=block.policies.current.version,
        )
        self.gossip = GossipNode(
            record,
            keyring=self._keyring,
            seeds=static_seeds(discovery),
            config=discovery.swim_config(),
            incarnation=max(0, int(time.time()) - INCARNATION_EPOCH),
            leave_drain=discovery.leave_drain,
        )
        await self.gossip.start()
        self._gossip_resolver = GossipResolver(self.gossip.node)
        self._deferred.set(self._gossip_resolver)
        self._loop_task = asyncio.create_task(self._seed_and_load(block), name="membership")
        block.policies.on_swap(self._advertise_policies)
        log.info("gossip on %s:%d", host, self.gossip_port)

    async def leave(self) -> None:
        """Announce LEFT and let it spread (``leave_drain``); requests stop coming."""
        if self.gossip is not None:
            await self.gossip.leave()

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._gossip_resolver is not None:
            self._gossip_resolver.close()
        if self.gossip is not None:
            await self.gossip.aclose()

    def _advertise_policies(self, _: PolicyState, new: PolicyState) -> None:
        """Put the version now in force in our gossip record: peers behind fetch it."""
        if self.gossip is not None and not self.gossip.node.leaving:
            self.gossip.node.update_record(policy_version=new.version)

    def policy_peers(self) -> list[Peer]:
        """Reachable members and the policy version their records carry (gossip mode)."""
        if self.gossip is None:
            return []
        me = self.gossip.node.record.instance
        return [
            Peer(
                m.instance,
                m.record.block,
                m.record.host,
                m.record.admin_port,
                m.record.policy_version,
            )
            for m in self.gossip.node.members()
            if m.instance != me and m.status.reachable
        ]

    def publish_gauges(self, hooks: Hooks) -> None:
        """``eblocks_gossip_members{status}``: this instance's gossip view by status."""

        def read() -> list[tuple[tuple[str], float]]:
            if self.gossip is None:
                return []
            counts = dict.fromkeys((s.name.lower() for s in MemberStatus), 0)
            for member in self.gossip.node.members():
                counts[member.status.name.lower()] += 1
            return [((status,), float(n)) for status, n in counts.items()]

        doc = "Members in this instance's gossip view, by status"
        hooks.gauge("eblocks_gossip_members", doc, ("status",), read)

    async def members(self, request: web.Request) -> web.Response:
        """``GET /v1/members[?block=B]``: this instance's view of the mesh."""
        block = request.query.get("block") or None
        if self.gossip is not None:
            rows = member_rows(self.gossip.node, block=block)
            mode = "gossip"
        else:
            roles = {name: roles_of(self.spec, name) for name in self.spec.blocks}
            rows = endpoint_rows(self._files.view(), block=block, roles=roles)
            mode = "supervisor"
        body: dict[str, Any] = {
            "mesh": self.spec.mesh,
            "mode": mode,
            "instance": self.instance,
            "members": rows,
        }
        if self.gossip is not None:
            body["counters"] = counters_row(self.gossip.node)
        return web.json_response(body, dumps=lambda obj: orjson.dumps(obj).decode())

    def _key_file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = (self.state.path / KEY_FILE).stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _reload_keys(self) -> None:
        """Adopt a changed ``gossip.key`` (key rotation); a bad file keeps the old keys.

        Install, then use (as Serf rotates keys): a new first key is accepted at
        once but signs only `KEY_SETTLE` seconds later, when every member has
        re-read the file (each does every second) and can check its packets;
        signing with it at once would make the members that have not read the
        file yet drop this one's probes and suspect it.
        """
        keyring = self._keyring
        if keyring is None:
            return
        now = self.gossip.node.clock.monotonic() if self.gossip is not None else 0.0
        window = self.spec.discovery.key_window
        pending = self._pending_keys
        if pending is not None and now >= pending[1]:
            self._pending_keys = None
            keyring.update(pending[0], window=window, now=now)
            log.info("gossip key id %d signs from now on", keyring.primary_id)
        stamp = self._key_file_stamp()
        if stamp is None or stamp == self._key_stamp:
            return
        self._key_stamp = stamp
        try:
            keys = read_keys(self.state.path)
            signing = keyring.sign_key()[1]
            switch = key_id_of(keys[0]) != keyring.primary_id
            keyring.update([signing, *keys] if switch else keys, window=window, now=now)
        except (DiscoveryError, ValueError) as exc:
            log.error("gossip key rotation refused, keeping the current keys: %s", exc)
            return
        self._pending_keys = (keys, now + KEY_SETTLE) if switch else None
        if switch:
            log.info("gossip keys reloaded: %d key(s), key id %d accepted, signing with it in %gs",
                     len(keys), key_id_of(keys[0]), KEY_SETTLE)  # fmt: skip
        else:
            log.info("gossip keys reloaded: %d key(s), signing with key id %d",
                     len(keys), keyring.primary_id)  # fmt: skip

    async def _seed_and_load(self, block: Block) -> None:
        """Keep joining seeds we do not see yet, and publish our load, every second."""
        assert self.gossip is not None
        node = self.gossip.node
        discovery = self.spec.discovery
        while not node.leaving:
            try:
                seeds: list[Addr] = []
                for instance, addr in read_supervisor_seeds(
                    self.state.path, exclude=self.instance
                ).items():
                    member = node.member(member_id(instance, addr[0]))
                    if (
                        member is None
                        or not member.status.reachable
                        or member.record.gossip_addr != addr
                    ):
                        seeds.append(addr)
                if node.alive_count == 0:
                    seeds += static_seeds(discovery)
                    if discovery.dns is not None:
                        seeds += await resolve_dns(discovery.dns, discovery.dns_port)
                if seeds:
                    node.join(seeds)
                node.set_load(block.inflight, 0.0, 0)
                self._reload_keys()
            except Exception:  # a bad seeds file must not end discovery
                log.exception("membership: seed refresh failed")
            await asyncio.sleep(0.5 if node.alive_count == 0 else 1.0)
