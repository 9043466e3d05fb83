"""Stable 64-bit hashes for the consistent-hash balancers.

BLAKE2b, not Python's ``hash()``: string hashing is salted per process, and
every caller of a block, in any process, must map a key to the same endpoint.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from eblocks._types import Endpoint
from eblocks.balance.base import endpoint_key, no_endpoints

__all__ = ["KeyedBalancer", "hash64"]


def hash64(text: str, purpose: bytes = b"") -> int:
    """A 64-bit hash of ``text``; a different ``purpose`` gives an independent hash."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=purpose).digest()
    return int.from_bytes(digest, "big")


class KeyedBalancer:
    """The part every consistent-hash balancer shares: a uniform pick without a
    key, and a lookup structure rebuilt only when the set of endpoints changes.

    Subclasses build their structure in ``_build(ids)`` (``ids`` are stable
    endpoint names, in the caller's order) and map a key to an index into that
    order in ``_index(key)``. Resolvers hand back the same tuple until their view
    changes, so the common case costs one identity check.
    """

    __slots__ = ("_ids", "_rng", "_seen")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ids: tuple[str, ...] = ()
        self._seen: Sequence[Endpoint] | None = None

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        if not endpoints:
            raise no_endpoints()
        if key is None:
            return endpoints[self._rng.randrange(len(endpoints))]
        if endpoints is not self._seen:
            ids = tuple(endpoint_key(ep) for ep in endpoints)
            if ids != self._ids:
                self._build(ids)
                self._ids = ids
            # only an immutable sequence can be trusted to be unchanged next time
            self._seen = endpoints if isinstance(endpoints, tuple) else None
        return endpoints[self._index(key)]

    def _build(self, ids: tuple[str, ...]) -> None:
        raise NotImplementedError

    def _index(self, key: str) -> int:
        raise NotImplementedError
