"""Compact JWS (RFC 7515) for the per-hop tokens: ES256 and EdDSA on `cryptography`.

Standard tokens (PyJWT reads and writes them too), made and checked without
PyJWT's per-character base64 validation, which costs more than the signature
for a token that carries its certificate (docs/decisions.md). The protected
header of a signer never changes, so it is encoded once (`header_segment`) and
a verifier caches what it learned from a header segment it has seen before.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = ["JwsError", "b64url", "b64url_decode", "header_segment", "sign", "split", "verify"]

_ECDSA = ec.ECDSA(hashes.SHA256())


class JwsError(ValueError):
    """A token that is not a well-formed compact JWS, or whose signature does not verify."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JwsError("malformed", f"bad base64url: {exc}") from exc


def header_segment(alg: str, extra: dict[str, Any]) -> str:
    return b64url(orjson.dumps({"alg": alg, "typ": "JWT", **extra}))


def sign(header: str, claims: dict[str, Any], key: Any) -> str:
    """``header.payload.signature`` with ``header`` from `header_segment`."""
    signing_input = f"{header}.{b64url(orjson.dumps(claims))}"
    data = signing_input.encode("ascii")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    else:
        r, s = decode_dss_signature(key.sign(data, _ECDSA))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{b64url(signature)}"


def split(token: str) -> tuple[str, str, str]:
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("malformed", "a token has three dot-separated parts")
    return parts[0], parts[1], parts[2]


def verify(header: str, payload: str, signature: str, alg: str, key: Any) -> dict[str, Any]:
    """The claims, once the signature over ``header.payload`` verifies with ``key``."""
    raw = b64url_decode(signature)
    data = f"{header}.{payload}".encode("ascii")
    try:
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, data)
        elif alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(raw) == 64:
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            key.verify(der, data, _ECDSA)
        else:
            raise JwsError("bad_signature", f"algorithm {alg!r} does not fit the signer's key")
    except InvalidSignature as exc:
        raise JwsError("bad_signature", "the request token's signature does not verify") from exc
    try:
        claims = orjson.loads(b64url_decode(payload))
    except orjson.JSONDecodeError as exc:
        raise JwsError("malformed", f"the payload is not JSON: {exc}") from exc
    if not isinstance(claims, dict):
        raise JwsError("malformed", "the payload is not a JSON object")
    return claims
