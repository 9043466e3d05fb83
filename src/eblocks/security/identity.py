"""Mesh identities (SPIFFE IDs) and private file writes, without `cryptography`.

Kept apart from `svid` so the request path (transport, TLS peer checks) and
gossip can use them without importing the X.509 machinery.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from eblocks.errors import IdentityError

__all__ = ["Identity", "replace_file", "write_private"]

_ID = re.compile(
    r"^spiffe://(?P<td>[a-z0-9._-]+)/mesh/(?P<mesh>[a-z0-9-]+)/(?P<kind>block|client)/(?P<name>[a-z0-9-]+)$"
)


@dataclass(frozen=True, slots=True)
class Identity:
    """A parsed mesh identity; ``str()`` is its SPIFFE ID."""

    trust_domain: str
    mesh: str
    name: str
    kind: str = "block"  # or "client": a caller that serves nothing (the CLI)
    uri: str = field(init=False, repr=False, compare=False)  # the SPIFFE ID, made once

    def __post_init__(self) -> None:
        uri = f"spiffe://{self.trust_domain}/mesh/{self.mesh}/{self.kind}/{self.name}"
        object.__setattr__(self, "uri", uri)

    def __str__(self) -> str:
        return self.uri

    @property
    def block(self) -> str | None:
        """The block name, or None for a client identity."""
        return self.name if self.kind == "block" else None

    @classmethod
    def parse(cls, uri: str) -> Identity:
        match = _ID.match(uri)
        if match is None:
            raise IdentityError(
                f"{uri!r} is not a mesh identity "
                "(expected spiffe://<trust-domain>/mesh/<mesh>/block|client/<name>)"
            )
        return cls(match["td"], match["mesh"], match["name"], match["kind"])


def write_private(path: Path, data: bytes) -> None:
    """Write a secret with mode 0600 from the first byte, replacing atomically."""
    replace_file(path, data, 0o600)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)
