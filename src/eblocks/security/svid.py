"""SPIFFE identities and the X.509 SVIDs that carry them.

An identity is ``spiffe://<trust-domain>/mesh/<mesh>/block/<block>`` (a block's
instances) or ``spiffe://<trust-domain>/mesh/<mesh>/client/<name>`` (the CLI,
benchmarks). An SVID is a short-lived leaf certificate whose only URI SAN is
that identity, its private key and the chain up to (not including) the root.

On disk (one folder per holder, ``<state>/identity/<name>/``)::

    svid.pem     leaf certificate, then the intermediates
    svid.key     PKCS#8 private key, mode 0600
    bundle.pem   the trust anchors (every root the mesh accepts now)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from eblocks.errors import IdentityError
from eblocks.security.identity import Identity, replace_file, write_private

__all__ = [
    "BACKDATE",
    "Identity",
    "PrivateKey",
    "Svid",
    "identity_of",
    "load_certs",
    "write_private",
]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
BACKDATE = timedelta(minutes=1)
"""How far `MeshCA` back-dates ``notBefore`` to tolerate clock skew between hosts."""


def identity_of(cert: x509.Certificate) -> Identity:
    """The mesh identity in a certificate's single URI SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise IdentityError("certificate has no subjectAltName") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise IdentityError(f"an SVID has exactly one URI SAN, this one has {len(uris)}")
    return Identity.parse(uris[0])


@dataclass(frozen=True, slots=True)
class Svid:
    """A leaf certificate, its key and the intermediates above it."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def identity(self) -> Identity:
        return identity_of(self.cert)

    @property
    def not_before(self) -> datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.cert.not_valid_after_utc

    def renew_at(self) -> datetime:
        """Half-way from issue to expiry: when the holder should get a new one.

        ``notBefore`` is back-dated by `BACKDATE` for clock skew; the half-life
        is counted from the moment of issue, not from the back-dated start.
        """
        issued = self.not_before + BACKDATE
        if issued >= self.not_after:  # not issued by us: plain half of the validity
            issued = self.not_before
        return issued + (self.not_after - issued) / 2

    def write(self, folder: Path, bundle: bytes) -> None:
        """Write svid.pem, svid.key (0600) and bundle.pem, each replaced atomically."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.cert, *self.chain))
        key = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # key first: a reader that sees the new certificate must find its key
        write_private(folder / "svid.key", key)
        replace_file(folder / "svid.pem", pem, 0o644)
        replace_file(folder / "bundle.pem", bundle, 0o644)

    @classmethod
    def read(cls, folder: Path) -> Svid:
        """Load an SVID written by `write`, checked; errors name the folder and the file.

        The key must be the certificate's, and the certificates must chain, by
        their signatures, to a root of ``bundle.pem`` when the folder has one:
        a damaged or mixed-up file is refused here, not found out by every
        peer's handshake.
        """
        try:
            certs = load_certs((folder / "svid.pem").read_bytes())
            key = serialization.load_pem_private_key((folder / "svid.key").read_bytes(), None)
        except (OSError, ValueError) as exc:
            raise IdentityError(f"{folder}: cannot load the SVID: {exc}") from exc
        if not certs:
            raise IdentityError(f"{folder}/svid.pem holds no certificate")
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise IdentityError(f"{folder}/svid.key: unsupported key type {type(key).__name__}")
        if _public(key.public_key()) != _public(certs[0].public_key()):
            raise IdentityError(f"{folder}/svid.key is not the key of svid.pem's certificate")
        svid = cls(certs[0], key, tuple(certs[1:]))
        try:
            anchors = load_certs((folder / "bundle.pem").read_bytes())
        except FileNotFoundError:
            return svid
        except (OSError, ValueError) as exc:
            raise IdentityError(f"{folder}/bundle.pem: cannot load it: {exc}") from exc
        svid.check_chain(anchors, f"{folder}/svid.pem")
        return svid

    def check_chain(self, anchors: Sequence[x509.Certificate], where: str) -> None:
        """That each certificate is signed by the next, the last by one of ``anchors``."""
        path = (self.cert, *self.chain)
        for child, parent in pairwise(path):
            if not _signed_by(child, parent):
                raise IdentityError(f"{where}: a certificate's signature does not verify")
        top = path[-1]
        if not any(_signed_by(top, anchor) for anchor in anchors):
            raise IdentityError(
                f"{where}: the certificate does not verify against the trust bundle "
                "(damaged, or issued by another CA)"
            )


def _public(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def load_certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem) if pem.strip() else []
