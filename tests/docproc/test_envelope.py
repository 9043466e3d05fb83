"""The digital envelope: exact round trips, strength by level, and every tampering caught."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from docproc import envelope as envelope_module
from docproc.envelope import DATA_KEY_BITS, Envelope, open_envelope, seal
from docproc.errors import (
    DecryptError,
    EnvelopeError,
    MalformedEnvelopeError,
    SignatureError,
    UnknownKeyError,
    UnwrapError,
)
from docproc.keystore import LEVELS, RSA_BITS, KeyStore

SIZES = (0, 1, 15, 16, 17, 255, 4096, 65_537, 1 << 20)
AAD = b"doc-idempotency-key-42"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _flip(data: bytes, index: int) -> bytes:
    flipped = bytearray(data)
    flipped[index] ^= 0x01
    return bytes(flipped)


@pytest.mark.parametrize("level", LEVELS)
def test_round_trip_returns_the_exact_bytes(keystore: KeyStore, level: str) -> None:
    for seed, size in enumerate(SIZES):
        plaintext = _payload(size, seed)
        sealed = seal(plaintext, level, keystore, aad=AAD)
        # Through JSON, as the store keeps it.
        restored = Envelope.from_dict(json.loads(json.dumps(sealed.to_dict())))
        assert restored == sealed
        assert open_envelope(restored, keystore, aad=AAD) == plaintext
        assert len(sealed.ciphertext) == size + 16


@pytest.mark.parametrize("level", LEVELS)
def test_strength_follows_the_level(keystore: KeyStore, level: str) -> None:
    sealed = seal(b"graded", level, keystore, aad=b"")
    assert sealed.level == level
    assert sealed.kid.startswith(f"rsa{RSA_BITS[level]}-")
    assert len(sealed.wrapped_key) * 8 == RSA_BITS[level]
    data_key = keystore.decryption_key(sealed.kid).decrypt(sealed.wrapped_key, OAEP)
    assert len(data_key) * 8 == DATA_KEY_BITS[level]
    # The envelope carries no key material: neither the data key nor any private key.
    text = json.dumps(sealed.to_dict())
    assert base64.b64encode(data_key).decode() not in text
    assert data_key.hex() not in text
    assert "PRIVATE KEY" not in text


def test_each_seal_uses_a_fresh_nonce_and_data_key(keystore: KeyStore) -> None:
    first = seal(b"same text", "low", keystore, aad=AAD)
    second = seal(b"same text", "low", keystore, aad=AAD)
    assert first.nonce != second.nonce
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize("field", ["nonce", "wrapped_key", "ciphertext", "signature"])
def test_a_flipped_bit_in_any_binary_field_is_caught(keystore: KeyStore, field: str) -> None:
    sealed = seal(_payload(4096, 7), "medium", keystore, aad=AAD)
    value: bytes = getattr(sealed, field)
    for index in (0, len(value) // 2, len(value) - 1):
        changes: dict[str, Any] = {field: _flip(value, index)}
        tampered = dataclasses.replace(sealed, **changes)
        with pytest.raises(SignatureError, match=r"signature .* does not match"):
            open_envelope(tampered, keystore, aad=AAD)


def test_a_changed_level_or_key_id_is_caught(keystore: KeyStore) -> None:
    sealed = seal(b"low risk", "low", keystore, aad=AAD)
    with pytest.raises(SignatureError):
        open_envelope(dataclasses.replace(sealed, level="high"), keystore, aad=AAD)
    other_kid, _ = keystore.encryption_key("medium")
    with pytest.raises(SignatureError):
        open_envelope(dataclasses.replace(sealed, kid=other_kid), keystore, aad=AAD)
    with pytest.raises(UnknownKeyError, match="no key 'ed25519-0000000000000000'"):
        open_envelope(
            dataclasses.replace(sealed, signer="ed25519-0000000000000000"), keystore, aad=AAD
        )


def test_a_changed_ciphertext_length_is_caught(keystore: KeyStore) -> None:
    sealed = seal(b"some text", "high", keystore, aad=AAD)
    for ciphertext in (sealed.ciphertext[:-1], sealed.ciphertext + b"\0"):
        with pytest.raises(SignatureError):
            open_envelope(dataclasses.replace(sealed, ciphertext=ciphertext), keystore, aad=AAD)


def test_the_wrong_aad_is_caught(keystore: KeyStore) -> None:
    sealed = seal(b"bound to its key", "low", keystore, aad=AAD)
    for aad in (b"", AAD + b"x", AAD[:-1], _flip(AAD, 0)):
        with pytest.raises(SignatureError, match="aad differs"):
            open_envelope(sealed, keystore, aad=aad)


def test_behind_the_signature_the_unwrap_and_the_gcm_tag_still_check(
    keystore: KeyStore,
) -> None:
    """Re-signed tampering (only a holder of the signing key can do it) is caught further in."""
    sealed = seal(b"defence in depth", "medium", keystore, aad=AAD)
    _, signing = keystore.signing_key()
    replace = dataclasses.replace

    def resigned(changed: Envelope) -> Envelope:
        header = envelope_module._header(
            changed.version, changed.level, changed.kid, changed.signer, AAD
        )
        message = envelope_module._to_sign(
            header, changed.nonce, changed.wrapped_key, changed.ciphertext
        )
        return dataclasses.replace(changed, signature=signing.sign(message))

    with pytest.raises(UnwrapError, match="does not unwrap"):
        open_envelope(
            resigned(replace(sealed, wrapped_key=_flip(sealed.wrapped_key, 5))), keystore, aad=AAD
        )
    with pytest.raises(DecryptError, match="GCM tag"):
        open_envelope(
            resigned(replace(sealed, ciphertext=_flip(sealed.ciphertext, 0))), keystore, aad=AAD
        )
    with pytest.raises(DecryptError):
        open_envelope(resigned(replace(sealed, nonce=_flip(sealed.nonce, 11))), keystore, aad=AAD)


def test_another_stores_envelope_names_the_unknown_key(keystore: KeyStore, tmp_path: Path) -> None:
    stranger = KeyStore(tmp_path / "other")
    sealed = seal(b"from elsewhere", "low", stranger, aad=AAD)
    with pytest.raises(UnknownKeyError, match=sealed.signer):
        open_envelope(sealed, keystore, aad=AAD)


def test_from_dict_names_the_bad_field(keystore: KeyStore) -> None:
    good = seal(b"x", "low", keystore, aad=AAD).to_dict()
    cases: list[tuple[object, str]] = [
        ("not an object", "expected an object"),
        ({k: v for k, v in good.items() if k != "nonce"}, "missing field.*nonce"),
        ({**good, "colour": "blue"}, "unexpected field.*colour"),
        ({**good, "nonce": "!!!"}, "'nonce': not base64"),
        ({**good, "ciphertext": 12}, "'ciphertext': expected a base64 string"),
        ({**good, "nonce": base64.b64encode(b"short").decode()}, "'nonce': 5 bytes, expected 12"),
        ({**good, "signature": ""}, "'signature': 0 bytes, expected 64"),
        ({**good, "ciphertext": ""}, "'ciphertext': 0 bytes"),
        ({**good, "version": 2}, "'version': unsupported 2"),
        ({**good, "version": True}, "'version': unsupported True"),
        ({**good, "level": "urgent"}, "'level': 'urgent' is not one of"),
        ({**good, "kid": ""}, "'kid': expected a key id"),
        ({**good, "signer": None}, "'signer': expected a key id"),
    ]
    for data, message in cases:
        with pytest.raises(MalformedEnvelopeError, match=message):
            Envelope.from_dict(data)  # type: ignore[arg-type]  # wrong types on purpose


def test_every_failure_is_an_envelope_error(keystore: KeyStore) -> None:
    sealed = seal(b"x", "low", keystore, aad=AAD)
    for error in (SignatureError, UnwrapError, DecryptError, MalformedEnvelopeError):
        assert issubclass(error, EnvelopeError)
    with pytest.raises(EnvelopeError):
        open_envelope(sealed, keystore, aad=b"wrong")
    with pytest.raises(EnvelopeError):
        seal(b"x", "urgent", keystore, aad=AAD)
