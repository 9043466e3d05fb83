"""Gossip wire format: round trips, and every bad packet rejected with a PacketError reason."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random

import pytest

from eblocks.discovery.member import Load, MemberRecord, MemberStatus
from eblocks.discovery.wire import (
    MAC_SIZE,
    Keyring,
    Kind,
    LoadUpdate,
    StateUpdate,
    _record_from_list,
    _record_to_list,
    decode,
    encode,
    encode_update,
    key_id_of,
)
from eblocks.errors import DiscoveryError, PacketError

KEY = b"k" * 32
OTHER = b"o" * 32
MAX = 1400
RECORD = MemberRecord(
    mesh="m",
    block="store",
    instance="store-1",
    host="10.0.0.1",
    port=8000,
    gossip_port=7946,
    admin_port=9000,
    roles=("filter",),
    identity="spiffe://td/mesh/m/block/store",
    version="1.2.3",
    labels={"tier": "db"},
    zone="a",
    load=Load(3, 12.5, 1, 7),
    policy_version=12,
)


def packet(keyring: Keyring | None = None) -> bytes:
    updates = [
        encode_update(StateUpdate(MemberStatus.ALIVE, "store-1", 4, RECORD)),
        encode_update(StateUpdate(MemberStatus.SUSPECT, "x-2", 9)),
        encode_update(LoadUpdate("store-1", Load(5, 1.5, 0, 8))),
    ]
    return encode(
        keyring or Keyring(KEY),
        Kind.PING_REQ,
        17,
        "me",
        updates,
        target="store-1",
        target_addr=("10.0.0.1", 7946),
    )


def reason(data: bytes, keyring: Keyring | None = None, *, now: float = 0.0) -> str:
    with pytest.raises(PacketError) as info:
        decode(data, keyring or Keyring(KEY), now=now, max_size=MAX)
    return info.value.reason


def test_round_trip_keeps_every_field() -> None:
    got = decode(packet(), Keyring(KEY), now=0.0, max_size=MAX)
    assert (got.kind, got.seq, got.source, got.target) == (Kind.PING_REQ, 17, "me", "store-1")
    assert got.target_addr == ("10.0.0.1", 7946)
    assert got.updates == (
        StateUpdate(MemberStatus.ALIVE, "store-1", 4, RECORD),
        StateUpdate(MemberStatus.SUSPECT, "x-2", 9, None),
        LoadUpdate("store-1", Load(5, 1.5, 0, 8)),
    )


def test_a_record_without_a_policy_version_still_decodes() -> None:
    """A member that predates policy bundles sends 13 fields: it is at version 0."""
    old = _record_to_list(RECORD)[:13]
    assert _record_from_list("store-1", old) == dataclasses.replace(RECORD, policy_version=0)
    assert _record_from_list("store-1", _record_to_list(RECORD)).policy_version == 12


def test_packet_error_is_a_discovery_value_error() -> None:
    assert issubclass(PacketError, DiscoveryError)
    assert issubclass(PacketError, ValueError)


def test_forged_byte_fails_the_mac() -> None:
    data = bytearray(packet())
    data[10] ^= 0x01
    assert reason(bytes(data)) == "bad_mac"


def test_wrong_key_fails_the_mac() -> None:
    assert reason(packet(Keyring(OTHER))) == "bad_mac"


def test_unknown_key_id_is_rejected() -> None:
    assert reason(packet(Keyring(KEY, key_id=9))) == "unknown_key"


@pytest.mark.parametrize("cut", [0, 1, 5, 36, 37])
def test_truncated_packets_are_rejected(cut: int) -> None:
    assert reason(packet()[:cut]) == "truncated"


def test_truncated_body_fails_the_mac() -> None:
    data = packet()
    assert reason(data[: -MAC_SIZE - 3] + data[-MAC_SIZE:]) == "bad_mac"


def test_oversized_packet_is_rejected_before_any_work() -> None:
    assert reason(b"EG" + b"\x01\x00" + b"x" * MAX) == "oversized"


def test_bad_magic_and_version() -> None:
    data = packet()
    assert reason(b"XX" + data[2:]) == "bad_magic"
    assert reason(data[:2] + b"\x07" + data[3:]) == "bad_version"


def signed(payload: bytes) -> bytes:
    body = b"EG\x01\x00" + payload
    return body + hmac.digest(KEY, body, hashlib.sha256)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"{}",
        b"[1,2,3]",
        b'[99,1,"a","","",0,[]]',
        b'[1,-1,"a","","",0,[]]',
        b'[1,1,2,"","",0,[]]',
        b'[1,1,"a","","",0,{}]',
        b'[1,1,"a","","",0,[[7]]]',
        b'[1,1,"a","","",0,[[0,1,"b",1,[1,2]]]]',
        b'[1,1,"a","","",0,[[0,9,"b",1,null]]]',
        b'[1,1,"a","","",0,[[1,"b",1,"x",0,0]]]',
        b'[1,1,"a","","",0,[[0,0,"b",1,["m","b","h",99999,1,1,[],"","",{},"","serving",[0,0,0,0]]]]]',
        b'[1,1,"a","","",0,[[0,0,"b",1,["m","b","h",1,1,1,[],"","",{"k":1},"","serving",[0,0,0,0]]]]]',
        b'[1,1,"a","","",0,[[0,0,"b",1,["m","b","h",1,1,1,[],"","",{},"","bogus",[0,0,0,0]]]]]',
    ],
)
def test_authentic_but_malformed_payloads_are_rejected(payload: bytes) -> None:
    assert reason(signed(payload)) == "malformed"


def test_random_garbage_only_ever_raises_packet_error() -> None:
    rng = random.Random(7)
    valid = packet()
    for _ in range(2000):
        size = rng.randrange(0, 200)
        candidates = [
            rng.randbytes(size),
            b"EG\x01\x00" + rng.randbytes(size),
            bytes(b ^ (rng.random() < 0.01) for b in valid),
        ]
        for data in candidates:
            if data == valid:
                continue
            with pytest.raises(PacketError):
                decode(data, Keyring(KEY), now=0.0, max_size=MAX)


def test_rotation_accepts_old_and_new_keys_during_the_window() -> None:
    old = packet(Keyring(KEY, key_id=1))
    ring = Keyring(KEY, key_id=1)
    ring.rotate(OTHER, 2, window=30.0, now=100.0)
    assert ring.primary_id == 2
    new = encode(ring, Kind.GOSSIP, 0, "me")
    assert decode(new, Keyring(OTHER, key_id=2), now=0.0, max_size=MAX).source == "me"
    assert decode(old, ring, now=129.0, max_size=MAX).source == "me"
    assert reason(old, ring, now=131.0) == "unknown_key"
    assert decode(new, ring, now=1e9, max_size=MAX).source == "me"  # the primary never expires


@pytest.mark.parametrize(
    ("key", "key_id"), [(b"short", 0), (KEY, 256), (KEY, -1)], ids=["short", "id-high", "id-neg"]
)
def test_keyring_rejects_weak_keys_and_bad_ids(key: bytes, key_id: int) -> None:
    with pytest.raises(ValueError, match="gossip key"):
        Keyring(key, key_id)


def test_rotating_to_the_primary_id_is_an_error() -> None:
    ring = Keyring(KEY, key_id=3)
    with pytest.raises(ValueError, match="already the primary"):
        ring.rotate(OTHER, 3, window=1.0, now=0.0)


def test_a_key_list_signs_with_the_first_and_accepts_all() -> None:
    ring = Keyring.from_keys([OTHER, KEY])
    assert ring.primary_id == key_id_of(OTHER)
    signed_old = encode(Keyring.from_keys([KEY]), Kind.GOSSIP, 0, "old")
    signed_new = encode(ring, Kind.GOSSIP, 0, "new")
    assert decode(signed_old, ring, now=0.0, max_size=MAX).source == "old"
    assert decode(signed_new, Keyring.from_keys([OTHER]), now=0.0, max_size=MAX).source == "new"
    assert reason(signed_new, Keyring.from_keys([KEY])) == "unknown_key"


def test_a_key_removed_from_the_list_is_accepted_until_the_window_closes() -> None:
    ring = Keyring.from_keys([KEY])
    signed_old = encode(Keyring.from_keys([KEY]), Kind.GOSSIP, 0, "old")
    ring.update([OTHER], window=60.0, now=10.0)
    assert ring.accepted(10.0) == [key_id_of(OTHER), key_id_of(KEY)]
    assert decode(signed_old, ring, now=70.0, max_size=MAX).source == "old"
    assert reason(signed_old, ring, now=70.5) == "unknown_key"
    assert ring.accepted(71.0) == [key_id_of(OTHER)]
    ring.update([OTHER, KEY], window=60.0, now=80.0)  # a key listed again is accepted again
    assert decode(signed_old, ring, now=1e6, max_size=MAX).source == "old"


def test_two_keys_with_one_id_are_refused() -> None:
    keys = [b"%032d" % n for n in range(600)]
    first = keys[0]
    clash = next(k for k in keys[1:] if key_id_of(k) == key_id_of(first))
    with pytest.raises(ValueError, match="share the key id"):
        Keyring.from_keys([first, clash])
    ring = Keyring.from_keys([first])
    with pytest.raises(ValueError, match="share the key id"):
        ring.update([clash], window=60.0, now=0.0)
    assert ring.primary_id == key_id_of(first)  # refused: nothing changed
