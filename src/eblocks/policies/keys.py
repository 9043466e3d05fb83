"""The mesh's policy signing key, kept in the state dir next to the mesh CA.

On disk, in ``<state>/policy/`` (the folder is 0700)::

    signing.key   Ed25519 private key, PKCS#8 PEM, 0600: who reads it can change the policies
    signing.pub   its public key (SubjectPublicKeyInfo PEM): what instances verify with
    run           a random id of this run of the mesh (new at each `eblocks up`)
    bundle.json   the last bundle an instance accepted by POST (restarts resume from it)

The supervisor creates the key pair once (`ensure_signing_key`) and leaves it
for later runs, and writes a new ``run`` id at each start: bundles carry it, so
one signed for an earlier run cannot be replayed into this one (its versions
started again at 0). `eblocks apply` signs with the private key; instances read the
public key when they start, as they read the CA bundle. Rendered pods read
``signing.pub`` and ``run`` from a ConfigMap mounted elsewhere (``--policy-dir``
of the instance, `eblocks.deploy.policy`): the private key never enters a
cluster. A dedicated key rather than the CA's: it exists with mTLS off, it is
never passphrase-protected or someone else's intermediate, and signing
policies never touches the root (docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from eblocks.errors import SecurityError
from eblocks.security.identity import replace_file, write_private

__all__ = [
    "bundle_file",
    "ensure_signing_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "new_run",
    "policy_folder",
    "public_key_pem",
    "read_run",
]

_PRIVATE = "signing.key"
_PUBLIC = "signing.pub"


def policy_folder(state: Path) -> Path:
    return state / "policy"


def bundle_file(state: Path) -> Path:
    return policy_folder(state) / "bundle.json"


def key_id(public: ed25519.Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def ensure_signing_key(state: Path) -> bool:
    """Create the key pair unless it exists; True when it was created."""
    folder = policy_folder(state)
    if (folder / _PRIVATE).exists() and (folder / _PUBLIC).exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_private(folder / _PRIVATE, pem)
    replace_file(folder / _PUBLIC, public, 0o644)
    return True


def load_signing_key(state: Path) -> ed25519.Ed25519PrivateKey:
    """The private key (`eblocks apply`); SecurityError when missing or not Ed25519."""
    path = policy_folder(state) / _PRIVATE
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise SecurityError(f"cannot load the policy signing key {path}: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SecurityError(f"{path}: the policy signing key must be Ed25519")
    return key


def public_key_pem(state: Path) -> bytes:
    """The public key's PEM, as `ensure_signing_key` wrote it (what a rendered pod mounts)."""
    path = policy_folder(state) / _PUBLIC
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SecurityError(f"cannot read the policy public key {path}: {exc}") from exc


def load_public_key(state: Path, folder: Path | None = None) -> ed25519.Ed25519PublicKey | None:
    """The public key instances verify with; None when the mesh has none (bundles refused).

    ``folder`` replaces ``<state>/policy`` (a pod's read-only ConfigMap mount).
    """
    path = (folder or policy_folder(state)) / _PUBLIC
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot load the policy public key {path}: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SecurityError(f"{path}: the policy public key must be Ed25519")
    return key


def new_run(state: Path) -> str:
    """Start a new run of the mesh: a fresh id, written for instances and `eblocks apply`."""
    run = secrets.token_hex(8)
    folder = policy_folder(state)
    folder.mkdir(parents=True, exist_ok=True)
    replace_file(folder / "run", run.encode() + b"\n", 0o644)
    return run


def read_run(state: Path, folder: Path | None = None) -> str:
    """The id of the current run ("" when the state dir has none: no supervisor made it)."""
    try:
        return ((folder or policy_folder(state)) / "run").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
