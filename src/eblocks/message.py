"""`Message`: the unit that moves through the mesh — opaque bytes plus headers.

Header names are stored lower-case. The mesh owns the headers named below;
handlers may read them and may add their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "DEADLINE_HEADER",
    "ERROR_HEADER",
    "HASH_KEY_HEADER",
    "IDEMPOTENCY_HEADER",
    "METHOD_HEADER",
    "MIRROR_HEADER",
    "NAME_HEADER",
    "ORIGIN_HEADER",
    "PART_HEADER",
    "PATH_HEADER",
    "PATTERN_HEADER",
    "REQUEST_ID_HEADER",
    "ROUTE_HEADER",
    "SOURCE_HEADER",
    "STAGE_HEADER",
    "TOKEN_HEADER",
    "USER_HEADER",
    "Message",
]

REQUEST_ID_HEADER = "x-request-id"
IDEMPOTENCY_HEADER = "idempotency-key"
PATTERN_HEADER = "x-eblocks-pattern"
STAGE_HEADER = "x-eblocks-stage"
DEADLINE_HEADER = "x-eblocks-timeout-ms"
SOURCE_HEADER = "x-eblocks-source"
ERROR_HEADER = "x-eblocks-error"
ORIGIN_HEADER = "x-eblocks-origin"
PART_HEADER = "x-eblocks-part"  # "<index>/<count>" on each part of a divide-conquer
HASH_KEY_HEADER = "x-eblocks-hash-key"  # the key consistent-hash balancers route on
NAME_HEADER = "x-eblocks-name"  # the file a batch item came from (`eblocks submit`)
TOKEN_HEADER = "x-eblocks-token"  # the per-hop request JWT (eblocks.security.tokens)
PATH_HEADER = "x-eblocks-path"  # path (and ?query) of a call between blocks, matched by routes
MIRROR_HEADER = "x-eblocks-mirror"  # "1" on a shadow copy (layers/mirror.py): discard its effects
ROUTE_HEADER = "x-eblocks-route"  # the route that sent a call to a pattern: not routed again
METHOD_HEADER = "x-eblocks-method"  # the app's method of a call through a sidecar (else POST)
USER_HEADER = "x-eblocks-user"  # inside a block only: ctx -> token layer; never trusted inbound

# Hop-by-hop and transport headers that never belong to a Message.
_TRANSPORT_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "accept-encoding",
        "content-encoding",
        "user-agent",
        "date",
        "server",
        "accept",
    }
)


@dataclass(frozen=True, slots=True)
class Message:
    """Bytes plus headers. Immutable: derive new messages with :meth:`replace`."""

    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, body: bytes | str | Mapping[str, Any] | list[Any], **headers: str) -> Message:
        """Build a message from bytes, text or a JSON-serialisable object."""
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = orjson.dumps(body)
        return cls(data, {k.replace("_", "-").lower(): v for k, v in headers.items()})

    @classmethod
    def from_wire(cls, body: bytes, headers: Mapping[str, str]) -> Message:
        """Keep the headers a message carries, dropping transport ones."""
        kept = {}
        for name, value in headers.items():  # on every request and reply: lower() once
            key = name.lower()
            if key not in _TRANSPORT_HEADERS:
                kept[key] = value
        return cls(body, kept)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def replace(
        self, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Message:
        """A copy with a new body and/or headers merged over the current ones."""
        merged = dict(self.headers)
        if headers:
            for name, value in headers.items():
                merged[name.lower()] = value
        return Message(self.body if body is None else body, merged)

    def without(self, *names: str) -> Message:
        drop = {n.lower() for n in names}
        return Message(self.body, {k: v for k, v in self.headers.items() if k not in drop})

    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return orjson.loads(self.body)
