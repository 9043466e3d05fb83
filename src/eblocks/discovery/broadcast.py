"""The queue of updates a node piggybacks on its packets, each sent a bounded number of times.

An update about a member replaces any older queued update about the same
member (per kind), and is retransmitted ``limit(n)`` times, where
``limit = mult * ceil(log10(n + 1))`` grows with the log of the view size, as in
SWIM's infection-style dissemination. Packets take the least-sent updates first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BroadcastQueue", "retransmit_limit"]


def retransmit_limit(mult: int, members: int) -> int:
    """How many times one node sends one update, given ``members`` in the view."""
    return mult * max(1, math.ceil(math.log10(members + 1)))


@dataclass(slots=True)
class _Item:
    key: tuple[str, int]
    data: bytes
    sent: int
    limit_mult: int


class BroadcastQueue:
    """Encoded updates waiting to be piggybacked, bucketed by how often they were sent."""

    __slots__ = ("_buckets", "_items")

    def __init__(self) -> None:
        self._items: dict[tuple[str, int], _Item] = {}
        self._buckets: dict[int, dict[tuple[str, int], _Item]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def push(self, instance: str, kind: int, data: bytes, *, limit_mult: int) -> None:
        """Queue ``data`` about ``instance``, replacing an older update of the same kind."""
        key = (instance, kind)
        old = self._items.pop(key, None)
        if old is not None:
            del self._buckets[old.sent][key]
        item = _Item(key, data, 0, limit_mult)
        self._items[key] = item
        self._buckets.setdefault(0, {})[key] = item

    def take(self, budget: int, members: int) -> list[bytes]:
        """Updates whose encoded size (plus a comma each) fits ``budget`` bytes."""
        out: list[bytes] = []
        picked: list[_Item] = []
        for sent in sorted(self._buckets):
            for item in self._buckets[sent].values():
                size = len(item.data) + 1
                if size <= budget:
                    budget -= size
                    out.append(item.data)
                    picked.append(item)
                if budget < 16:
                    break
            if budget < 16:
                break
        for item in picked:
            self._resend(item, members)
        return out

    def _resend(self, item: _Item, members: int) -> None:
        bucket = self._buckets[item.sent]
        del bucket[item.key]
        if not bucket:
            del self._buckets[item.sent]
        item.sent += 1
        if item.sent >= retransmit_limit(item.limit_mult, members):
            del self._items[item.key]
        else:
            self._buckets.setdefault(item.sent, {})[item.key] = item
