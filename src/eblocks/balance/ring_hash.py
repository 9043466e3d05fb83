"""Ring hash: consistent hashing of a key onto a ring of virtual nodes.

Each endpoint owns ``vnodes`` points on a 64-bit ring, at the hashes of
``"<block>/<instance>#<i>"``; a key goes to the owner of the first point at or
after the key's hash, wrapping round. Many points per endpoint even out the
arcs, and when an endpoint leaves only the keys on its arcs move (about 1/N of
them), to its neighbours; when one joins it takes about 1/N from the others.
State: the sorted ring, rebuilt only when the set of endpoints changes. Points
are ordered by (hash, instance), so callers given the endpoints in different
orders build the same ring. Without a key the pick is uniformly random.
"""

from __future__ import annotations

import bisect
import random

from eblocks.balance._hash import KeyedBalancer, hash64

__all__ = ["DEFAULT_VNODES", "RingHash"]

DEFAULT_VNODES = 160  # as ketama; the spread of arc sizes shrinks as 1/sqrt(vnodes)


class RingHash(KeyedBalancer):
    """Consistent hashing on ``key`` with ``vnodes`` virtual nodes per endpoint."""

    __slots__ = ("_owners", "_points", "_vnodes")

    def __init__(self, rng: random.Random, *, vnodes: int = DEFAULT_VNODES) -> None:
        if vnodes < 1:
            raise ValueError(f"RingHash vnodes must be >= 1, got {vnodes}")
        super().__init__(rng)
        self._vnodes = vnodes
        self._points: list[int] = []
        self._owners: list[int] = []  # index into the endpoints the ring was built for

    def _build(self, ids: tuple[str, ...]) -> None:
        ring = sorted(
            (hash64(f"{name}#{v}"), name, index)
            for index, name in enumerate(ids)
            for v in range(self._vnodes)
        )
        self._points = [point for point, _, _ in ring]
        self._owners = [index for _, _, index in ring]

    def _index(self, key: str) -> int:
        slot = bisect.bisect_left(self._points, hash64(key))
        return self._owners[slot % len(self._points)]
