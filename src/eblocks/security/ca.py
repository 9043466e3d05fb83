"""The mesh CA: a root (or a brought-in intermediate) that signs the SVIDs.

On disk, in ``<state>/ca/`` (the folder is 0700)::

    ca.json      trust domain, key type, fingerprints, when it was made/rotated
    ca.pem       the signing certificate (the root, or your intermediate)
    ca.key       its private key, 0600, PKCS#8, encrypted when a passphrase is set
    chain.pem    certificates between the signing certificate and the root (may be empty)
    bundle.pem   trust anchors: the current root and, after `rotate`, the previous one

Rotation (``rotate``) makes a new root, moves the old one to ``previous.pem`` and
keeps it in ``bundle.pem``: SVIDs signed by either verify until the old ones
expire, and the supervisor re-issues every SVID from the new root at once.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eblocks.errors import SecurityError
from eblocks.security.svid import (
    BACKDATE,
    Identity,
    PrivateKey,
    Svid,
    load_certs,
    write_private,
)

__all__ = ["DEFAULT_TRUST_DOMAIN", "KeyType", "MeshCA", "new_key"]

KeyType = Literal["ecdsa-p256", "ed25519"]
DEFAULT_TRUST_DOMAIN = "eblocks.local"
_ROOT_TTL = dt.timedelta(days=3650)


def new_key(kind: KeyType) -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":")


@dataclass(slots=True)
class MeshCA:
    """A loaded CA: sign SVIDs with `issue`; `bundle` is what peers trust."""

    folder: Path
    trust_domain: str
    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    anchors: tuple[x509.Certificate, ...]

    # -- creation and loading ---------------------------------------------------------

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return (folder / "ca.json").exists()

    @classmethod
    def init(
        cls,
        folder: Path,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        *,
        key_type: KeyType = "ecdsa-p256",
        passphrase: bytes | None = None,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        bundle_pem: bytes | None = None,
        key_passphrase: bytes | None = None,
    ) -> MeshCA:
        """Create a new root, or adopt your own root/intermediate (``cert_pem`` + ``key_pem``).

        An adopted intermediate needs ``bundle_pem`` (its root, and any certificates
        between them); an adopted root is its own anchor.
        """
        if cls.exists(folder):
            raise SecurityError(f"{folder}: a mesh CA already exists (use `eblocks ca rotate`)")
        Identity(trust_domain, "m", "n")  # the same charset checks as a parsed ID
        if cert_pem is None:
            key = new_key(key_type)
            cert = _self_signed(key, trust_domain)
            chain: tuple[x509.Certificate, ...] = ()
            anchors: tuple[x509.Certificate, ...] = (cert,)
        else:
            cert, key, chain, anchors = _adopt(cert_pem, key_pem, bundle_pem, key_passphrase)
        ca = cls(folder, trust_domain, cert, key, chain, anchors)
        ca._save(passphrase, created=True)
        return ca

    @classmethod
    def load(cls, folder: Path, passphrase: bytes | None = None) -> MeshCA:
        meta = _read_meta(folder)
        try:
            cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
            key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), passphrase)
            chain = tuple(load_certs((folder / "chain.pem").read_bytes()))
            anchors = tuple(load_certs((folder / "bundle.pem").read_bytes()))
        except TypeError as exc:  # cryptography: missing or unexpected passphrase
            raise SecurityError(
                f"{folder}/ca.key: {exc} (set EBLOCKS_CA_PASSPHRASE; `eblocks ca` commands "
                "also take --passphrase-file)"
            ) from exc
        except (OSError, ValueError) as exc:
            raise SecurityError(f"{folder}: cannot load the mesh CA: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise SecurityError(f"{folder}/ca.key: unsupported key type {type(key).__name__}")
        return cls(folder, str(meta["trust_domain"]), cert, key, chain, anchors)

    def rotate(self, passphrase: bytes | None = None) -> MeshCA:
        """A new root of the same key type; the old root stays trusted (previous.pem)."""
        if self.chain or self.cert not in self.anchors:
            raise SecurityError(
                "this CA is a brought-in intermediate: rotate it where its root lives, "
                "then `eblocks ca init --force` with the new one"
            )
        key = new_key(
            "ed25519" if isinstance(self.key, ed25519.Ed25519PrivateKey) else "ecdsa-p256"
        )
        cert = _self_signed(key, self.trust_domain)
        (self.folder / "previous.pem").write_bytes(_pem(self.cert))
        rotated = MeshCA(self.folder, self.trust_domain, cert, key, (), (cert, self.cert))
        rotated._save(passphrase, created=False)
        return rotated

    # -- issuing ------------------------------------------------------------------------

    @property
    def bundle(self) -> bytes:
        return b"".join(_pem(c) for c in self.anchors)

    def issue(
        self,
        identity: Identity,
        ttl: dt.timedelta,
        *,
        key: PrivateKey | None = None,
        now: dt.datetime | None = None,
    ) -> Svid:
        """A leaf certificate for ``identity`` valid ``ttl`` (a new key unless one is given)."""
        if identity.trust_domain != self.trust_domain:
            raise SecurityError(
                f"identity {identity} is outside this CA's trust domain {self.trust_domain!r}"
            )
        key = key or new_key(
            "ed25519" if isinstance(self.key, ed25519.Ed25519PrivateKey) else "ecdsa-p256"
        )
        cert = self.sign(key.public_key(), identity, ttl, now=now)
        return Svid(cert, key, self.chain_to_root)

    def sign(
        self,
        public_key: Any,
        identity: Identity,
        ttl: dt.timedelta,
        *,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Sign a leaf for a public key (the CSR path of a remote instance)."""
        start = (now or dt.datetime.now(dt.UTC)) - BACKDATE
        end = min(start + BACKDATE + ttl, self.cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.mesh)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(public_key), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(identity))]),
                critical=True,  # the subject is empty of meaning: the SAN is the identity
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        return builder.sign(self.key, _hash_for(self.key))

    @property
    def chain_to_root(self) -> tuple[x509.Certificate, ...]:
        """What a leaf presents above itself: the signing cert unless it is the anchor."""
        return () if self.cert in self.anchors else (self.cert, *self.chain)

    def describe(self) -> dict[str, Any]:
        """What `eblocks ca inspect` prints."""
        return {
            "folder": str(self.folder),
            "trust_domain": self.trust_domain,
            "key_type": _key_type(self.key),
            "subject": self.cert.subject.rfc4514_string(),
            "fingerprint_sha256": _fingerprint(self.cert),
            "not_before": self.cert.not_valid_before_utc.isoformat(),
            "not_after": self.cert.not_valid_after_utc.isoformat(),
            "intermediate": bool(self.chain_to_root),
            "anchors": [
                {"subject": c.subject.rfc4514_string(), "fingerprint_sha256": _fingerprint(c)}
                for c in self.anchors
            ],
            "key_encrypted": b"ENCRYPTED" in (self.folder / "ca.key").read_bytes(),
        }

    def _save(self, passphrase: bytes | None, *, created: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        write_private(self.folder / "ca.key", key)
        (self.folder / "ca.pem").write_bytes(_pem(self.cert))
        (self.folder / "chain.pem").write_bytes(b"".join(_pem(c) for c in self.chain))
        (self.folder / "bundle.pem").write_bytes(self.bundle)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        meta = {} if created else _read_meta(self.folder)
        meta.update(trust_domain=self.trust_domain, key_type=_key_type(self.key))
        meta["created" if created else "rotated"] = now
        (self.folder / "ca.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = orjson.loads((folder / "ca.json").read_bytes())
    except FileNotFoundError:
        raise SecurityError(f"no mesh CA in {folder} (create one with `eblocks ca init`)") from None
    except orjson.JSONDecodeError as exc:
        raise SecurityError(f"{folder}/ca.json is corrupt: {exc}") from exc
    if not isinstance(meta, dict) or "trust_domain" not in meta:
        raise SecurityError(f"{folder}/ca.json has no trust_domain")
    return meta


def _key_type(key: PrivateKey) -> KeyType:
    return "ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "ecdsa-p256"


def _leaf_usage(public_key: Any) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=isinstance(public_key, ec.EllipticCurvePublicKey),
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _self_signed(key: PrivateKey, trust_domain: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC) - BACKDATE
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eblocks"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{trust_domain} mesh root {now:%Y%m%d%H%M%S}"),
        ]
    )
    public = key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now)
        .not_valid_after(now + _ROOT_TTL)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.UniformResourceIdentifier(trust_domain)],
                excluded_subtrees=None,
            ),
            critical=True,  # this root can only vouch for its own trust domain
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _hash_for(key))
    )


def _adopt(
    cert_pem: bytes,
    key_pem: bytes | None,
    bundle_pem: bytes | None,
    key_passphrase: bytes | None,
) -> tuple[
    x509.Certificate, PrivateKey, tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]
]:
    if key_pem is None:
        raise SecurityError("bringing your own CA needs its private key (--key)")
    certs = load_certs(cert_pem)
    if not certs:
        raise SecurityError("--cert holds no PEM certificate")
    try:
        key = serialization.load_pem_private_key(key_pem, key_passphrase)
    except (TypeError, ValueError) as exc:
        raise SecurityError(f"--key: cannot load the private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise SecurityError(f"--key: unsupported key type {type(key).__name__} (EC or Ed25519)")
    cert = certs[0]
    if cert.public_key() != key.public_key():
        raise SecurityError("--key does not belong to the certificate in --cert")
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise SecurityError("--cert is not a CA certificate (basicConstraints CA:TRUE)")
    extra = load_certs(bundle_pem or b"")
    self_signed = cert.issuer == cert.subject
    if self_signed:
        return cert, key, (), (cert, *extra)
    roots = [c for c in (*certs[1:], *extra) if c.issuer == c.subject]
    if not roots:
        raise SecurityError("--cert is an intermediate: pass its root with --bundle")
    chain = tuple(c for c in (*certs[1:], *extra) if c.issuer != c.subject)
    return cert, key, chain, tuple(roots)
