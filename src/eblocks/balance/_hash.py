"""Stable 64-bit hashes for the consistent-hash balancers.

BLAKE2b, not Python's ``hash()``: string hashing is salted per process, and
every caller of a block, in any process, must map a key to the same endpoint.
"""

from __future__ import annotations

import hashlib

__all__ = ["hash64"]


def hash64(text: str, purpose: bytes = b"") -> int:
    """A 64-bit hash of ``text``; a different ``purpose`` gives an independent hash."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=purpose).digest()
    return int.from_bytes(digest, "big")
