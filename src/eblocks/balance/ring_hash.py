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
from collections.abc import Sequence

from eblocks._types import Endpoint
from eblocks.balance._hash import hash64
from eblocks.balance.base import endpoint_key, no_endpoints

__all__ = ["DEFAULT_VNODES", "RingHash"]

DEFAULT_VNODES = 160  # as ketama; the spread of arc sizes shrinks as 1/sqrt(vnodes)


class RingHash:
    """Consistent hashing on ``key`` with ``vnodes`` virtual nodes per endpoint."""

    __slots__ = ("_ids", "_owners", "_points", "_rng", "_vnodes")

    def __init__(self, rng: random.Random, *, vnodes: int = DEFAULT_VNODES) -> None:
        if vnodes < 1:
            raise ValueError(f"RingHash vnodes must be >= 1, got {vnodes}")
        self._rng = rng
        self._vnodes = vnodes
        self._ids: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[int] = []  # index into the endpoints the ring was built for

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        if not endpoints:
            raise no_endpoints()
        if key is None:
            return endpoints[self._rng.randrange(len(endpoints))]
        self._rebuild_if_changed(endpoints)
        slot = bisect.bisect_left(self._points, hash64(key))
        return endpoints[self._owners[slot % len(self._points)]]

    def _rebuild_if_changed(self, endpoints: Sequence[Endpoint]) -> None:
        ids = tuple(endpoint_key(ep) for ep in endpoints)
        if ids == self._ids:
            return
        ring = sorted(
            (hash64(f"{name}#{v}"), name, index)
            for index, name in enumerate(ids)
            for v in range(self._vnodes)
        )
        self._ids = ids
        self._points = [point for point, _, _ in ring]
        self._owners = [index for _, _, index in ring]
