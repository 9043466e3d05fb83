"""The gossip wire format: compact JSON arrays inside an HMAC-SHA256 envelope.

One datagram is::

    +-------+---------+--------+-----------------------------+-----------------+
    | "EG"  | version | key id | payload (orjson array)      | HMAC-SHA256     |
    | 2 B   | 1 B     | 1 B    | variable                    | 32 B            |
    +-------+---------+--------+-----------------------------+-----------------+

The MAC covers everything before it, with the mesh gossip key named by the
key id. A :class:`Keyring` sends with its primary key and accepts the previous
ones until their rotation window closes, so keys rotate without a flag day.

The payload is ``[kind, seq, source, target, target_host, target_port, [update, ...]]``;
an update is ``[0, status, instance, incarnation, record|null]`` (membership) or
``[1, instance, load_seq, inflight, ewma_ms, queue]`` (load). A record is a
positional array (see :func:`_record_to_list`). Updates are encoded once with
:func:`encode_update` and spliced into every packet that piggybacks them.

:func:`decode` raises only :class:`~eblocks.errors.PacketError`, whatever the input.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from eblocks.discovery.member import Health, Load, MemberRecord, MemberStatus
from eblocks.errors import PacketError

__all__ = [
    "MAC_SIZE",
    "OVERHEAD",
    "Keyring",
    "Kind",
    "LoadUpdate",
    "Packet",
    "StateUpdate",
    "Update",
    "decode",
    "encode",
    "encode_update",
    "key_id_of",
]

MAGIC = b"EG"
VERSION = 1
MAC_SIZE = 32
HEADER_SIZE = 4
OVERHEAD = HEADER_SIZE + MAC_SIZE
MIN_KEY_BYTES = 16


class Kind(enum.IntEnum):
    """What a packet asks for; every kind may piggyback updates."""

    PING = 1
    ACK = 2
    PING_REQ = 3
    GOSSIP = 4
    SYNC = 5  # push my full state, please reply with yours
    SYNC_REPLY = 6


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A member's status at an incarnation; ``record`` is present for ALIVE and in syncs."""

    status: MemberStatus
    instance: str
    incarnation: int
    record: MemberRecord | None = None


@dataclass(frozen=True, slots=True)
class LoadUpdate:
    """A fresher load summary of a known member (best effort, ordered by ``load.seq``)."""

    instance: str
    load: Load


Update = StateUpdate | LoadUpdate


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded packet; ``target``/``target_addr`` are set for PING and PING_REQ."""

    kind: Kind
    seq: int
    source: str
    target: str = ""
    target_addr: tuple[str, int] | None = None
    updates: tuple[Update, ...] = ()


class Keyring:
    """The mesh gossip keys: one primary to sign with, older ones accepted for a while.

    ``rotate`` makes a new key primary and keeps accepting the old primary until
    ``now + window`` (on the caller's monotonic clock). ``from_keys``/``update``
    take a whole key list (a key file, one key per line) with ids derived from
    the keys, so every member agrees on them without coordination.
    """

    __slots__ = ("_keys", "_primary", "_until")

    def __init__(self, key: bytes, key_id: int = 0) -> None:
        self._check(key, key_id)
        self._keys: dict[int, bytes] = {key_id: key}
        self._until: dict[int, float] = {}
        self._primary = key_id

    @property
    def primary_id(self) -> int:
        return self._primary

    def rotate(self, key: bytes, key_id: int, *, window: float, now: float) -> None:
        """Sign with ``key`` from now on; accept the previous key until ``now + window``."""
        self._check(key, key_id)
        if key_id == self._primary:
            raise ValueError(f"key id {key_id} is already the primary key")
        self._until[self._primary] = now + window
        self._keys[key_id] = key
        self._until.pop(key_id, None)
        self._primary = key_id

    def key(self, key_id: int, now: float) -> bytes | None:
        """The key for ``key_id`` if it is still accepted at ``now``."""
        key = self._keys.get(key_id)
        if key is None:
            return None
        until = self._until.get(key_id)
        if until is not None and now > until:
            del self._keys[key_id], self._until[key_id]
            return None
        return key

    @classmethod
    def from_keys(cls, keys: Sequence[bytes]) -> Keyring:
        """Sign with ``keys[0]``, accept all of them; ids come from the keys (:func:`key_id_of`)."""
        if not keys:
            raise ValueError("at least one gossip key is needed")
        ring = cls(keys[0], key_id_of(keys[0]))
        ring.update(keys, window=0.0, now=0.0)
        return ring

    def update(self, keys: Sequence[bytes], *, window: float, now: float) -> None:
        """Adopt a new key list (first signs, all accepted); keys no longer listed are
        still accepted until ``now + window`` at most, so members can switch one by one."""
        if not keys:
            raise ValueError("at least one gossip key is needed")
        for key_id, until in list(self._until.items()):
            if now > until:
                del self._keys[key_id], self._until[key_id]
        wanted: dict[int, bytes] = {}
        for key in keys:
            key_id = key_id_of(key)
            self._check(key, key_id)
            clash = wanted.get(key_id, self._keys.get(key_id, key))
            if clash != key:
                raise ValueError(f"two gossip keys share the key id {key_id}: pick another key")
            wanted[key_id] = key
        for key_id in self._keys:
            if key_id not in wanted:
                self._until[key_id] = min(self._until.get(key_id, math.inf), now + window)
        for key_id, key in wanted.items():
            self._keys[key_id] = key
            self._until.pop(key_id, None)
        self._primary = key_id_of(keys[0])

    def accepted(self, now: float) -> list[int]:
        """The ids of every key accepted at ``now``, the signing one first."""
        ids = [k for k in self._keys if k == self._primary or self._until.get(k, now) >= now]
        return sorted(ids, key=lambda k: k != self._primary)

    def sign_key(self) -> tuple[int, bytes]:
        return self._primary, self._keys[self._primary]

    @staticmethod
    def _check(key: bytes, key_id: int) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"gossip key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
        if not 0 <= key_id <= 255:
            raise ValueError(f"gossip key id must be 0..255, got {key_id}")


def key_id_of(key: bytes) -> int:
    """The key id a key is sent under: the first byte of its SHA-256, the same on every host."""
    return hashlib.sha256(key).digest()[0]


def encode_update(update: Update) -> bytes:
    """Encode one update once, to be spliced into packets by :func:`encode`."""
    if isinstance(update, LoadUpdate):
        ld = update.load
        return orjson.dumps([1, update.instance, ld.seq, ld.inflight, ld.ewma_ms, ld.queue])
    record = None if update.record is None else _record_to_list(update.record)
    return orjson.dumps([0, int(update.status), update.instance, update.incarnation, record])


def encode(
    keyring: Keyring,
    kind: Kind,
    seq: int,
    source: str,
    updates: list[bytes] | tuple[bytes, ...] = (),
    *,
    target: str = "",
    target_addr: tuple[str, int] | None = None,
) -> bytes:
    """Build and sign one packet; ``updates`` are already encoded by :func:`encode_update`."""
    host, port = target_addr or ("", 0)
    head = orjson.dumps([int(kind), seq, source, target, host, port])
    payload = head[:-1] + b",[" + b",".join(updates) + b"]]"
    key_id, key = keyring.sign_key()
    body = MAGIC + bytes((VERSION, key_id)) + payload
    return body + hmac.digest(key, body, hashlib.sha256)


def decode(data: bytes, keyring: Keyring, *, now: float, max_size: int) -> Packet:
    """Authenticate and parse one packet; any failure raises :class:`PacketError`."""
    if len(data) > max_size:
        raise PacketError("oversized", f"{len(data)} > {max_size} bytes")
    if len(data) < OVERHEAD + 2:
        raise PacketError("truncated", f"{len(data)} bytes")
    if data[:2] != MAGIC:
        raise PacketError("bad_magic")
    if data[2] != VERSION:
        raise PacketError("bad_version", str(data[2]))
    key = keyring.key(data[3], now)
    if key is None:
        raise PacketError("unknown_key", f"key id {data[3]}")
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(hmac.digest(key, body, hashlib.sha256), mac):
        raise PacketError("bad_mac")
    try:
        return _parse(orjson.loads(body[HEADER_SIZE:]))
    except PacketError:
        raise
    except (orjson.JSONDecodeError, TypeError, ValueError, IndexError, KeyError) as exc:
        raise PacketError("malformed", str(exc)) from exc


def _parse(raw: Any) -> Packet:
    if not isinstance(raw, list) or len(raw) != 7:
        raise PacketError("malformed", "payload is not a 7-element array")
    kind = Kind(_int(raw[0]))
    host, port = _str(raw[4]), _int(raw[5])
    target_addr = (host, port) if host else None
    if not isinstance(raw[6], list):
        raise PacketError("malformed", "updates is not an array")
    updates = tuple(_parse_update(item) for item in raw[6])
    return Packet(kind, _int(raw[1]), _str(raw[2]), _str(raw[3]), target_addr, updates)


def _parse_update(raw: Any) -> Update:
    if not isinstance(raw, list) or not raw:
        raise PacketError("malformed", "update is not an array")
    if raw[0] == 1 and len(raw) == 6:
        load = Load(_int(raw[3]), _float(raw[4]), _int(raw[5]), _int(raw[2]))
        return LoadUpdate(_str(raw[1]), load)
    if raw[0] == 0 and len(raw) == 5:
        instance = _str(raw[2])
        record = None if raw[4] is None else _record_from_list(instance, raw[4])
        return StateUpdate(MemberStatus(_int(raw[1])), instance, _int(raw[3]), record)
    raise PacketError("malformed", "unknown update")


def _record_to_list(r: MemberRecord) -> list[Any]:
    ld = r.load
    return [
        r.mesh, r.block, r.host, r.port, r.gossip_port, r.admin_port, list(r.roles),
        r.identity, r.version, dict(r.labels), r.zone, r.health.value,
        [ld.inflight, ld.ewma_ms, ld.queue, ld.seq], r.policy_version,
    ]  # fmt: skip


def _record_from_list(instance: str, raw: Any) -> MemberRecord:
    if not isinstance(raw, list) or len(raw) not in (13, 14):
        raise PacketError("malformed", "record is not a 14-element array")
    labels = raw[9]
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise PacketError("malformed", "labels must map strings to strings")
    if not isinstance(raw[6], list) or not isinstance(raw[12], list) or len(raw[12]) != 4:
        raise PacketError("malformed", "roles or load are not arrays")
    ld = raw[12]
    return MemberRecord(
        mesh=_str(raw[0]),
        block=_str(raw[1]),
        instance=instance,
        host=_str(raw[2]),
        port=_int(raw[3]),
        gossip_port=_int(raw[4]),
        admin_port=_int(raw[5]),
        roles=tuple(_str(role) for role in raw[6]),
        identity=_str(raw[7]),
        version=_str(raw[8]),
        labels=labels,
        zone=_str(raw[10]),
        health=Health(_str(raw[11])),
        load=Load(_int(ld[0]), _float(ld[1]), _int(ld[2]), _int(ld[3])),
        policy_version=_int(raw[13]) if len(raw) == 14 else 0,  # 13: a member before policies
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise PacketError("malformed", f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PacketError("malformed", f"expected a non-negative integer, got {value!r}")
    return value


def _float(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PacketError("malformed", f"expected a number, got {value!r}")
    return float(value)
