"""A digital envelope whose strength follows the document's risk level.

``seal`` encrypts with a fresh AES-GCM data key (128/192/256 bits for
low/medium/high) and a 96-bit random nonce, wraps the data key with RSA-OAEP
(SHA-256) under the level's RSA key (2048/3072/4096 bits), and signs with the
store's Ed25519 key over a canonical encoding of every field and the caller's
``aad`` (which is not stored: the opener must supply the same bytes, e.g. the
document's idempotency key). The AES-GCM associated data binds the ciphertext
to the header (version, level, key ids, aad) as well.

``open_envelope`` checks in order of cost: the signature first (cheap, and it
rejects any tampering before the key store is asked for a private key), then the
RSA unwrap (the expensive private operation), then the AES-GCM tag. Every
failure is an :class:`~docproc.errors.EnvelopeError` subclass that says which
check failed. Only the ``cryptography`` package does cryptography here.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from docproc.errors import DecryptError, MalformedEnvelopeError, SignatureError, UnwrapError
from docproc.keystore import LEVELS, RSA_BITS, KeyStore, check_level

__all__ = ["DATA_KEY_BITS", "VERSION", "Envelope", "open_envelope", "seal"]

VERSION: Final = 1
DATA_KEY_BITS: Final = {"low": 128, "medium": 192, "high": 256}
NONCE_BYTES: Final = 12
SIGNATURE_BYTES: Final = 64
TAG_BYTES: Final = 16

_DOMAIN: Final = b"eblocks-docproc/envelope\x00"
_OAEP: Final = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
_BINARY: Final = ("nonce", "wrapped_key", "ciphertext", "signature")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A sealed document: public fields only, no key material.

    ``kid`` names the RSA key that wrapped the data key and ``signer`` the
    Ed25519 key that signed; ``ciphertext`` ends with the 16-byte GCM tag.
    """

    version: int
    level: str
    kid: str
    signer: str
    nonce: bytes
    wrapped_key: bytes
    ciphertext: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != VERSION:
            raise MalformedEnvelopeError(
                f"envelope field 'version': unsupported {self.version!r} "
                f"(this code reads {VERSION})"
            )
        if self.level not in LEVELS:
            raise MalformedEnvelopeError(
                f"envelope field 'level': {self.level!r} is not one of {', '.join(LEVELS)}"
            )
        for name in ("kid", "signer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or not value.isascii():
                raise MalformedEnvelopeError(f"envelope field {name!r}: expected a key id string")
        for name in _BINARY:
            if not isinstance(getattr(self, name), bytes):
                raise MalformedEnvelopeError(f"envelope field {name!r}: expected bytes")
        _check_size("nonce", self.nonce, NONCE_BYTES)
        _check_size("signature", self.signature, SIGNATURE_BYTES)
        if len(self.ciphertext) < TAG_BYTES:
            raise MalformedEnvelopeError(
                f"envelope field 'ciphertext': {len(self.ciphertext)} bytes, "
                f"shorter than the {TAG_BYTES}-byte GCM tag"
            )

    def to_dict(self) -> dict[str, str | int]:
        """JSON-safe form: binary fields in standard base64."""
        out: dict[str, str | int] = {
            "version": self.version,
            "level": self.level,
            "kid": self.kid,
            "signer": self.signer,
        }
        for name in _BINARY:
            out[name] = base64.b64encode(getattr(self, name)).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Envelope:
        """Parse :meth:`to_dict`'s output; :class:`MalformedEnvelopeError` names the field."""
        if not isinstance(data, Mapping):
            raise MalformedEnvelopeError(f"envelope: expected an object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in data]
        extra = sorted(str(key) for key in data if key not in names)
        if missing:
            raise MalformedEnvelopeError(f"envelope: missing field(s) {', '.join(missing)}")
        if extra:
            raise MalformedEnvelopeError(f"envelope: unexpected field(s) {', '.join(extra)}")
        values = {name: data[name] for name in names}
        for name in _BINARY:
            values[name] = _b64decode(name, values[name])
        return cls(**values)  # type: ignore[arg-type]  # __post_init__ checks each type


def seal(plaintext: bytes, level: str, keys: KeyStore, *, aad: bytes) -> Envelope:
    """Encrypt ``plaintext`` at ``level``'s strength, bound to ``aad``, and sign it."""
    check_level(level)
    kid, public = keys.encryption_key(level)
    signer, signing = keys.signing_key()
    data_key = AESGCM.generate_key(bit_length=DATA_KEY_BITS[level])
    nonce = os.urandom(NONCE_BYTES)
    header = _header(VERSION, level, kid, signer, aad)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, header)
    wrapped_key = public.encrypt(data_key, _OAEP)
    signature = signing.sign(_to_sign(header, nonce, wrapped_key, ciphertext))
    return Envelope(VERSION, level, kid, signer, nonce, wrapped_key, ciphertext, signature)


def open_envelope(env: Envelope, keys: KeyStore, *, aad: bytes) -> bytes:
    """Verify, unwrap and decrypt ``env``; the plaintext exactly as sealed."""
    header = _header(env.version, env.level, env.kid, env.signer, aad)
    verifier = keys.verification_key(env.signer)
    try:
        verifier.verify(env.signature, _to_sign(header, env.nonce, env.wrapped_key, env.ciphertext))
    except InvalidSignature:
        raise SignatureError(
            f"envelope signature (key {env.signer}) does not match: a field was changed "
            "or the aad differs from the one it was sealed with"
        ) from None
    private = keys.decryption_key(env.kid)
    if private.key_size != RSA_BITS[env.level]:
        raise UnwrapError(
            f"key {env.kid} is RSA-{private.key_size}; level {env.level!r} "
            f"uses RSA-{RSA_BITS[env.level]}"
        )
    try:
        data_key = private.decrypt(env.wrapped_key, _OAEP)
    except ValueError:
        raise UnwrapError(f"the data key does not unwrap with RSA-OAEP key {env.kid}") from None
    if len(data_key) * 8 != DATA_KEY_BITS[env.level]:
        raise UnwrapError(
            f"the data key is {len(data_key) * 8} bits; level {env.level!r} "
            f"uses {DATA_KEY_BITS[env.level]}"
        )
    try:
        return AESGCM(data_key).decrypt(env.nonce, env.ciphertext, header)
    except InvalidTag:
        raise DecryptError("the AES-GCM tag does not authenticate the ciphertext") from None


def _canonical(*parts: bytes) -> bytes:
    """Domain tag, then each part as a 4-byte big-endian length and its bytes."""
    return _DOMAIN + b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def _header(version: int, level: str, kid: str, signer: str, aad: bytes) -> bytes:
    return _canonical(
        str(version).encode("ascii"), level.encode(), kid.encode(), signer.encode(), aad
    )


def _to_sign(header: bytes, nonce: bytes, wrapped_key: bytes, ciphertext: bytes) -> bytes:
    return _canonical(header, nonce, wrapped_key, ciphertext)


def _check_size(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise MalformedEnvelopeError(
            f"envelope field {name!r}: {len(value)} bytes, expected {size}"
        )


def _b64decode(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise MalformedEnvelopeError(
            f"envelope field {name!r}: expected a base64 string, got {type(value).__name__}"
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEnvelopeError(f"envelope field {name!r}: not base64 ({exc})") from None
