"""`GossipResolver`: the :class:`~eblocks._types.Resolver` over a gossip node's view.

An endpoint is listed when its member is reachable (ALIVE or SUSPECT), says it
is SERVING, and carries every label of the selector. ALIVE members come first,
SUSPECT ones last (deprioritised: a balancer that tries endpoints in order
reaches them only when nothing else is left); DEAD and LEFT members are gone.
The view is rebuilt only after the node reports a change, so ``endpoints()``
on the request path is one dictionary lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence

from eblocks._types import Endpoint
from eblocks.discovery.member import Health, Member, MemberStatus
from eblocks.discovery.swim import SwimNode

__all__ = ["GossipResolver", "to_endpoint"]


def to_endpoint(member: Member) -> Endpoint:
    """The endpoint of a member; its zone is added as the ``zone`` label unless set."""
    record = member.record
    labels = dict(record.labels)
    if record.zone:
        labels.setdefault("zone", record.zone)
    return Endpoint(record.block, record.instance, record.host, record.port, labels)


class GossipResolver:
    """Endpoints of each block as one gossip node sees them, filtered by health and labels."""

    def __init__(
        self,
        node: SwimNode,
        *,
        labels: Mapping[str, str] | None = None,
        include_self: bool = True,
    ) -> None:
        self._node = node
        self._selector = dict(labels or {})
        self._include_self = include_self
        self._view: dict[str, tuple[Endpoint, ...]] | None = None
        self._members: dict[str, tuple[Member, ...]] = {}
        self._changed = asyncio.Event()
        self._unsubscribe = node.subscribe(self._on_change)

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        return self._current().get(block, ())

    def members(self, block: str) -> Sequence[Member]:
        """The listed members of ``block`` with status and load, in endpoint order."""
        self._current()
        return self._members.get(block, ())

    def view(self) -> Mapping[str, Sequence[Endpoint]]:
        """The whole current view, block by block."""
        return dict(self._current())

    async def watch(self) -> AsyncGenerator[Mapping[str, Sequence[Endpoint]], None]:
        """Yield the view now, then again each time it changes."""
        last: Mapping[str, Sequence[Endpoint]] | None = None
        while True:
            changed = self._changed  # taken before reading, so no change is missed
            current = self.view()
            if current != last:
                last = current
                yield current
            else:
                await changed.wait()

    def close(self) -> None:
        """Stop listening to the node."""
        self._unsubscribe()

    def _on_change(self, member: Member) -> None:
        self._view = None
        self._changed.set()
        self._changed = asyncio.Event()

    def _current(self) -> dict[str, tuple[Endpoint, ...]]:
        return self._view if self._view is not None else self._rebuild()

    def _rebuild(self) -> dict[str, tuple[Endpoint, ...]]:
        listed: dict[str, list[Member]] = {}
        for member in self._node.members():
            if self._listed(member):
                listed.setdefault(member.record.block, []).append(member)
        self._members = {
            block: tuple(sorted(items, key=lambda m: (m.status, m.instance)))
            for block, items in sorted(listed.items())
        }
        self._view = {
            block: tuple(to_endpoint(m) for m in items) for block, items in self._members.items()
        }
        return self._view

    def _listed(self, member: Member) -> bool:
        if member.instance == self._node.record.instance and not self._include_self:
            return False
        record = member.record
        return (
            member.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)
            and record.health is Health.SERVING
            and all(record.labels.get(k) == v for k, v in self._selector.items())
        )
