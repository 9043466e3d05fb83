"""Per-hop request tokens (JWT, ES256 or EdDSA) and end-user tokens from a JWKS.

Per-hop tokens are standard compact JWS made by `eblocks.security.jws` (fast:
see docs/decisions.md); end-user tokens of any provider are checked by PyJWT.

The caller signs a token per hop (target block and end user) with its SVID key::

    header  {"alg": "ES256"|"EdDSA", "typ": "JWT", "x5c": [leaf, intermediates...]}
    claims  {"iss"/"sub": caller SPIFFE ID, "aud": target block's SPIFFE ID,
             "iat", "exp" (iat + ttl), "jti" (96 random bits),
             "usr": end-user subject (carried across hops), "act": [previous callers]}

The receiver checks the certificate in ``x5c`` against the mesh bundle (once
per certificate, then cached), that it names the same identity as the TLS peer,
the signature, ``aud`` = its own identity, ``iat``/``exp`` within ``skew``, and
that the ``jti`` was not seen before (`ReplayCache`). Carrying the certificate
makes rotation safe: a token signed with a new key verifies on a connection
that was opened with the old certificate.

With ``reuse`` (the default) a token is sender-constrained instead of single
use: the caller sends the same token to the same target for the same end user
for half its lifetime, and the receiver accepts it again only over mTLS from
the identity the token names (the certificate is the proof of possession, as
in RFC 8705), checking the signature once and ``exp`` and the peer on every
use. Anywhere else (a plaintext connection of a ``permissive`` block) a ``jti``
seen before is a replay. Without ``reuse`` every try carries a fresh token and
every ``jti`` is single use. docs/decisions.md (D58) has the costs.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import itertools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from eblocks.errors import IdentityError, SecurityError, UnauthenticatedError
from eblocks.message import TOKEN_HEADER, USER_HEADER
from eblocks.security import jws
from eblocks.security.svid import Identity, Svid, identity_of

__all__ = [
    "TOKEN_HEADER",
    "USER_HEADER",
    "Claims",
    "EndUserVerifier",
    "ReplayCache",
    "TokenMinter",
    "TokenVerifier",
]

_ALGS = ("ES256", "EdDSA")
_REQUIRED = ("exp", "iat", "jti", "aud", "sub")
_REMEMBERED = 4096  # tokens kept for reuse by a minter, verified ones by a verifier


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    caller: Identity
    user: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


class TokenMinter:
    """Signs tokens with the holder's current SVID (``svid()`` is read for each token)."""

    def __init__(
        self, svid: Callable[[], Svid], ttl: float, *, now: Callable[[], float] = time.time
    ) -> None:
        self._svid = svid
        self._ttl = int(ttl)
        self._now = now
        self._cached: tuple[Svid, str, str] | None = None
        self._made: dict[tuple[str, str | None], tuple[str, float, Svid]] = {}

    def token(self, audience: str, user: str | None = None) -> str:
        """A token for ``audience`` to send again: the last one made, until half its life."""
        made = self._made.get((audience, user))
        now = self._now()
        if made is not None and made[1] > now and made[2] is self._svid():
            return made[0]
        token = self.mint(audience, user)
        if len(self._made) >= _REMEMBERED:
            self._made.clear()
        self._made[(audience, user)] = (token, now + self._ttl / 2, self._svid())
        return token

    def mint(self, audience: str, user: str | None = None) -> str:
        """A fresh token (its own ``jti``)."""
        svid, header, sub = self._material()
        now = int(self._now())
        claims: dict[str, Any] = {
            "iss": sub,
            "sub": sub,
            "aud": audience,
            "iat": now,
            "exp": now + self._ttl,
            "jti": os.urandom(12).hex(),
        }
        if user:
            claims["usr"] = user
        return jws.sign(header, claims, svid.key)

    def _material(self) -> tuple[Svid, str, str]:
        svid = self._svid()
        if self._cached is None or self._cached[0] is not svid:
            x5c = [
                base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                for c in (svid.cert, *svid.chain)
            ]
            alg = "EdDSA" if isinstance(svid.key, ed25519.Ed25519PrivateKey) else "ES256"
            self._cached = (svid, jws.header_segment(alg, {"x5c": x5c}), str(svid.identity))
        return self._cached


class ReplayCache:
    """Token ids seen and still unexpired; bounded, oldest dropped first."""

    def __init__(self, size: int, *, now: Callable[[], float] = time.time) -> None:
        self._size = size
        self._now = now
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, jti: str, exp: float) -> bool:
        """Remember ``jti``; False when it was seen before (a replay)."""
        if jti in self._seen:
            return False
        self._seen[jti] = exp
        if len(self._seen) > self._size:
            now = self._now()
            seen = self._seen
            while seen and (len(seen) > self._size or next(iter(seen.values())) < now):
                seen.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class _Signer:
    key: Any
    identity: Identity
    alg: str
    until: float  # the certificate's notAfter


class TokenVerifier:
    """Verifies per-hop tokens addressed to ``audience`` (this block's identity)."""

    def __init__(
        self,
        audience: Identity,
        anchors: Callable[[], tuple[x509.Certificate, ...]],
        *,
        skew: float,
        replay: ReplayCache,
        reuse: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._aud = str(audience)
        self._domain = (audience.trust_domain, audience.mesh)
        self._anchors = anchors
        self._skew = skew
        self._replay = replay
        self._reuse = reuse
        self._now = now
        self._signers: dict[str, _Signer] = {}
        self._verified: dict[str, tuple[Claims, float]] = {}  # reusable token -> claims, exp

    def verify(self, token: str, peer: Identity | None) -> Claims:
        """The token's claims, or `UnauthenticatedError` with ``detail["token"]`` = why."""
        now = self._now()
        if peer is not None:
            known = self._verified.get(token)
            if known is not None and known[0].caller == peer and known[1] + self._skew >= now:
                return known[0]  # sent again by its holder over mTLS, still valid
        try:
            header, payload, signature = jws.split(token)
            signer = self._signers.get(header)
            if signer is None or signer.until < now:
                signer = self._signer(header, now)
            claims = jws.verify(header, payload, signature, signer.alg, signer.key)
        except jws.JwsError as exc:
            raise _reject(exc.why, str(exc)) from exc
        except IdentityError as exc:
            raise _reject("bad_certificate", f"the request token's certificate: {exc}") from exc
        missing = [name for name in _REQUIRED if name not in claims]
        if missing:
            raise _reject("malformed", f"the request token lacks {', '.join(missing)}")
        caller = signer.identity
        aud = claims["aud"]
        if aud != self._aud and not (isinstance(aud, list) and self._aud in aud):
            raise _reject("wrong_audience", f"the request token is not for {self._aud}")
        if not isinstance(claims["exp"], int | float) or not isinstance(claims["iat"], int | float):
            raise _reject("malformed", "exp and iat must be numbers")
        if claims["exp"] + self._skew < now:
            raise _reject("expired", "the request token has expired")
        if claims["iat"] > now + self._skew:
            raise _reject("not_yet_valid", "the request token's iat is in the future")
        if claims["sub"] != str(caller):
            raise _reject("wrong_subject", "the token's subject is not its certificate's identity")
        if peer is not None and peer != caller:
            raise _reject("peer_mismatch", f"token of {caller} sent over {peer}'s connection")
        first = self._replay.add(str(claims["jti"]), float(claims["exp"]))
        bound = self._reuse and peer is not None  # (and peer == caller, checked above)
        if not first and not bound:
            raise _reject("replayed", "the request token was already used")
        user = claims.get("usr")
        verified = Claims(caller, user if isinstance(user, str) else None, claims)
        if bound:
            if len(self._verified) >= _REMEMBERED:
                self._verified.clear()
            self._verified[token] = (verified, float(claims["exp"]))
        return verified

    def _signer(self, segment: str, now: float) -> _Signer:
        """Check the certificate chain in a header (once per header, then cached)."""
        try:
            header = orjson.loads(jws.b64url_decode(segment))
        except orjson.JSONDecodeError as exc:
            raise jws.JwsError("malformed", f"the header is not JSON: {exc}") from exc
        alg = header.get("alg") if isinstance(header, dict) else None
        if alg not in _ALGS:
            raise jws.JwsError("malformed", f"unsupported alg {alg!r} (ES256 or EdDSA)")
        x5c = header.get("x5c")
        if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
            raise IdentityError("the token header has no x5c certificate chain")
        try:
            certs = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in x5c]
        except ValueError as exc:
            raise IdentityError(f"x5c holds no DER certificate: {exc}") from exc
        identity = _verify_chain(certs, self._anchors(), now)
        if (identity.trust_domain, identity.mesh) != self._domain:
            raise IdentityError(f"{identity} is outside this mesh")
        leaf = certs[0]
        signer = _Signer(leaf.public_key(), identity, alg, leaf.not_valid_after_utc.timestamp())
        if len(self._signers) > 4096:
            self._signers.clear()
        self._signers[segment] = signer
        return signer


def _verify_chain(
    certs: list[x509.Certificate], anchors: tuple[x509.Certificate, ...], now: float
) -> Identity:
    """The leaf's identity if each certificate is signed by the next and the last by an anchor."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    for cert in certs:
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise IdentityError("a certificate in x5c is expired or not yet valid")
    for child, parent in itertools.pairwise(certs):
        _signed_by(child, parent)
    top = certs[-1]
    for anchor in anchors:
        if anchor.subject == top.issuer:
            try:
                _signed_by(top, anchor)
            except IdentityError:
                continue
            return identity_of(certs[0])
    raise IdentityError("the x5c chain does not lead to a trusted root of this mesh")


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> None:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, Exception) as exc:  # InvalidSignature has no common base
        raise IdentityError(f"certificate not signed by {parent.subject.rfc4514_string()}") from exc


def _reject(why: str, message: str) -> UnauthenticatedError:
    return UnauthenticatedError(message, detail={"token": why})


class EndUserVerifier:
    """End-user JWTs from an external provider, checked against a JWKS file."""

    def __init__(
        self,
        jwks_file: Path,
        *,
        issuer: str | None,
        audience: str | None,
        algorithms: tuple[str, ...],
        skew: float,
    ) -> None:
        import jwt  # PyJWT, only where end-user tokens are configured

        self._jwt = jwt
        try:
            data = orjson.loads(jwks_file.read_bytes())
            self._keys = {key.key_id or "": key for key in jwt.PyJWKSet.from_dict(data).keys}
        except (OSError, orjson.JSONDecodeError, jwt.PyJWTError) as exc:
            raise SecurityError(f"end_user.jwks_file {jwks_file}: {exc}") from exc
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._skew = skew

    def verify(self, token: str) -> tuple[str, Mapping[str, Any]]:
        """The end user's subject and claims."""
        jwt = self._jwt
        try:
            kid = jwt.get_unverified_header(token).get("kid") or ""
            key = self._keys.get(kid) or (next(iter(self._keys.values())) if not kid else None)
            if key is None:
                raise jwt.InvalidTokenError(f"no key {kid!r} in the JWKS")
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._skew,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError(
                "the end-user token has expired", detail={"user_token": "expired"}
            ) from exc
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError(
                f"the end-user token is invalid: {exc}", detail={"user_token": "invalid"}
            ) from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise UnauthenticatedError(
                "the end-user token names no user (an empty 'sub')",
                detail={"user_token": "invalid"},
            )
        return subject, claims
