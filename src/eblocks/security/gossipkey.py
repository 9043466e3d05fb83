"""The gossip key travels and rotates with the identity material.

The supervisor keeps the mesh's gossip key in ``<state>/gossip.key``. When the
mesh CA rotates (`eblocks ca rotate`), a key the supervisor generated is
rotated too (a key the spec pins is the operator's to change). Every instance
follows the file (`follow`): the new key becomes primary in its `Keyring` and
the old one is still accepted for ``window`` seconds, so members that have not
looked yet are still understood. Key ids are derived from the key itself
(`key_id`), so every member — and one that restarts later — agrees on them
without another file; the supervisor never picks a key whose id equals the
current one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from pathlib import Path

from eblocks.discovery.wire import Keyring
from eblocks.errors import DiscoveryError
from eblocks.security.identity import write_private

__all__ = ["follow", "key_id", "keyring_for", "rotate_key_file"]

log = logging.getLogger("eblocks.security.gossipkey")

ROTATION_WINDOW = 60.0  # seconds the previous key is still accepted


def key_id(key: bytes) -> int:
    """The wire key id of ``key`` (one byte of its SHA-256)."""
    return hashlib.sha256(key).digest()[0]


def keyring_for(key: bytes) -> Keyring:
    return Keyring(key, key_id(key))


def rotate_key_file(path: Path) -> bytes:
    """Write a new random key whose id differs from the current one's; return it."""
    old = path.read_bytes().strip() if path.exists() else b""
    while True:
        key = secrets.token_hex(32).encode()
        if not old or key_id(key) != key_id(old):
            break
    write_private(path, key)
    return key


def refresh(path: Path, keyring: Keyring, *, window: float = ROTATION_WINDOW) -> bool:
    """Make the key in ``path`` primary if it changed; True when it did."""
    try:
        key = path.read_bytes().strip()
    except OSError:
        return False
    if len(key) < 16 or key == keyring.sign_key()[1]:
        return False
    try:
        keyring.rotate(key, key_id(key), window=window, now=time.monotonic())
    except ValueError as exc:
        raise DiscoveryError(f"{path}: cannot rotate to the new gossip key: {exc}") from exc
    log.info("gossip key rotated (id %d)", key_id(key))
    return True


async def follow(path: Path, keyring: Keyring, *, interval: float = 1.0) -> None:
    """Look at ``path`` every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            refresh(path, keyring)
        except DiscoveryError as exc:
            log.warning("%s", exc)
