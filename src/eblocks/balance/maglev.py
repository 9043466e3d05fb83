"""Maglev: consistent hashing through a lookup table (Eisenbud et al., NSDI 2016).

The table has a prime number ``M`` of slots. Each endpoint has a preference
order over the slots, ``(offset + j * skip) mod M`` for ``j = 0, 1, ...``, with
``offset`` and ``skip`` (``1 <= skip < M``, so every slot appears) from two
independent hashes of its instance name. Endpoints take turns claiming their
next preferred free slot until the table is full, so each owns ``M/N`` slots
rounded up or down: the load is even to one slot. A key goes to the owner of
slot ``hash(key) mod M``, an O(1) lookup. When one endpoint of N leaves, its
slots are redistributed and only a few other slots change hands, so a little
more than 1/N of the keys move.

State: the table, rebuilt only when the set of endpoints changes. Turns go in
instance-name order, so callers given the endpoints in any order build the same
table. Without a key the pick is uniformly random. The default size, 16381,
keeps the table 100 times larger than up to ~160 endpoints (the paper's bound
for a 1% imbalance) while a rebuild stays a few milliseconds of pure Python;
Envoy's 65537 would stall the event loop four times longer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from eblocks.balance._hash import KeyedBalancer, hash64

__all__ = ["DEFAULT_TABLE_SIZE", "Maglev", "maglev_table"]

DEFAULT_TABLE_SIZE = 16381


def maglev_table(names: Sequence[str], size: int = DEFAULT_TABLE_SIZE) -> list[int]:
    """The lookup table: slot -> index into ``names`` (pure; ``size`` must be prime)."""
    if not names:
        return []
    position = [hash64(name, b"offset") % size for name in names]
    skip = [hash64(name, b"skip") % (size - 1) + 1 for name in names]
    table = [-1] * size
    filled = 0
    while True:
        for i in range(len(names)):
            slot = position[i]
            while table[slot] >= 0:
                slot = (slot + skip[i]) % size
            table[slot] = i
            position[i] = (slot + skip[i]) % size
            filled += 1
            if filled == size:
                return table


class Maglev(KeyedBalancer):
    """Maglev consistent hashing on ``key`` with a ``table_size``-slot lookup table."""

    __slots__ = ("_size", "_table")

    def __init__(self, rng: random.Random, *, table_size: int = DEFAULT_TABLE_SIZE) -> None:
        if not _is_prime(table_size):
            raise ValueError(f"Maglev table_size must be a prime number, got {table_size}")
        super().__init__(rng)
        self._size = table_size
        self._table: list[int] = []  # slot -> index into the endpoints it was built for

    def _build(self, ids: tuple[str, ...]) -> None:
        order = sorted(range(len(ids)), key=lambda index: ids[index])
        table = maglev_table([ids[index] for index in order], self._size)
        self._table = [order[slot] for slot in table]

    def _index(self, key: str) -> int:
        return self._table[hash64(key) % self._size]


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))
