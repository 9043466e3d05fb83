"""The gossip key rotates with the identity material.

The supervisor keeps the mesh's gossip keys in ``<state>/gossip.key`` (one per
line, the first signs; `eblocks.discovery.seeds`). When the mesh CA rotates
(`eblocks ca rotate`), a key the supervisor generated is rotated too: a new
signing key goes first and the previous signing key stays on the second line,
still accepted. Running instances re-read the file on their own
(`runtime.membership`): each accepts the new key at once and signs with it
only a few seconds later, when all of them accept it. A key
the spec pins (``key``/``key_file``) is the operator's to change.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from eblocks.discovery.seeds import parse_keys
from eblocks.discovery.wire import key_id_of
from eblocks.security.identity import write_private

__all__ = ["rotate_key_file"]


def rotate_key_file(path: Path) -> bytes:
    """Put a new signing key first, keep the previous signing key; return the new key."""
    old = parse_keys(path.read_bytes(), str(path))[0] if path.exists() else b""
    while True:
        key = secrets.token_hex(32).encode()
        if not old or key_id_of(key) != key_id_of(old):
            break
    write_private(path, key + b"\n" + (old + b"\n" if old else b""))
    return key
