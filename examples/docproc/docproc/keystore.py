"""A local key store: one RSA key pair per risk level and one Ed25519 signing key.

Layout of the directory (mode 0700)::

    low.kid  medium.kid  high.kid  signing.kid   which key id each slot uses
    rsa2048-<16 hex>.pem ... ed25519-<16 hex>.pem  PKCS#8 private keys, mode 0600
    .low.lock ...                                   flock(2) files, one per slot

A key id is the algorithm and the first 16 hex digits of the SHA-256 of the
public key's DER SubjectPublicKeyInfo, so it names the key itself and a loaded
file is checked against its name. A slot's key is created on first use under an
exclusive ``flock`` on the slot's lock file, re-checked once the lock is held:
block instances opening the same store at once end with one key per slot. Files
are written to a temporary name, fsynced and renamed, so a reader without the
lock sees either no ``<slot>.kid`` or a complete key. Key files stay after a
slot moves on, so envelopes sealed under an older key id still open.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from docproc.errors import KeyStoreError, UnknownKeyError

__all__ = ["LEVELS", "RSA_BITS", "SIGNING", "KeyInfo", "KeyStore", "check_level"]

LEVELS: Final = ("low", "medium", "high")
RSA_BITS: Final = {"low": 2048, "medium": 3072, "high": 4096}
SIGNING: Final = "signing"
SLOTS: Final = (*LEVELS, SIGNING)

_KID = re.compile(r"^(?:rsa(?:2048|3072|4096)|ed25519)-[0-9a-f]{16}$")
_LOCK_POLL_S: Final = 0.05

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def check_level(level: str) -> str:
    """Return ``level`` if it is a risk level, else raise naming the choices."""
    if level not in RSA_BITS:
        raise UnknownKeyError(f"unknown risk level {level!r}; expected one of {', '.join(LEVELS)}")
    return level


def key_id(public: rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> str:
    """``rsa<bits>-`` or ``ed25519-`` and 16 hex digits of SHA-256 over the SPKI DER."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    algorithm = f"rsa{public.key_size}" if isinstance(public, rsa.RSAPublicKey) else "ed25519"
    return f"{algorithm}-{hashlib.sha256(der).hexdigest()[:16]}"


def _slot_prefix(slot: str) -> str:
    return "ed25519-" if slot == SIGNING else f"rsa{RSA_BITS[slot]}-"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``keys list`` shows for one slot: never the key material."""

    slot: str
    kid: str
    algorithm: str
    path: Path


class KeyStore:
    """Keys by risk level (to seal) and by key id (to open), cached per process.

    Thread-safe: handlers run in a thread pool. ``lock_timeout`` bounds the wait
    for another process that is creating the same slot's key.
    """

    _shared: ClassVar[dict[Path, KeyStore]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, root: Path, *, lock_timeout: float = 300.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self._current: dict[str, str] = {}
        self._keys: dict[str, PrivateKey] = {}
        self._slot_locks = {slot: threading.Lock() for slot in SLOTS}
        self._dir_lock = threading.Lock()
        self._dir_ready = False

    @classmethod
    def shared(cls, root: Path) -> KeyStore:
        """The one ``KeyStore`` of this process for ``root``, so its cache is reused."""
        resolved = Path(root).resolve()
        with cls._shared_lock:
            store = cls._shared.get(resolved)
            if store is None:
                store = cls._shared[resolved] = cls(resolved)
            return store

    # -- keys to seal ---------------------------------------------------------

    def encryption_key(self, level: str) -> tuple[str, rsa.RSAPublicKey]:
        """The key id and RSA public key of ``level``, created on first use."""
        kid = self._kid_of(check_level(level))
        return kid, self.decryption_key(kid).public_key()

    def signing_key(self) -> tuple[str, ed25519.Ed25519PrivateKey]:
        """The key id and Ed25519 private key that sign envelopes."""
        kid = self._kid_of(SIGNING)
        key = self._key(kid)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyStoreError(f"{self.root / 'signing.kid'} names {kid}, not an Ed25519 key")
        return kid, key

    # -- keys to open ---------------------------------------------------------

    def decryption_key(self, kid: str) -> rsa.RSAPrivateKey:
        """The RSA private key with id ``kid``; :class:`UnknownKeyError` if absent."""
        key = self._key(kid)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise UnknownKeyError(f"key id {kid!r} is not an RSA key")
        return key

    def verification_key(self, kid: str) -> ed25519.Ed25519PublicKey:
        """The Ed25519 public key with id ``kid``; :class:`UnknownKeyError` if absent."""
        key = self._key(kid)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise UnknownKeyError(f"key id {kid!r} is not an Ed25519 signing key")
        return key.public_key()

    # -- whole store ----------------------------------------------------------

    def ensure(self) -> dict[str, str]:
        """Create every missing key (RSA-4096 takes seconds), load and check all of them.

        Returns slot -> key id; a key file that is missing or does not match its
        name raises here rather than at the first document.
        """
        kids = {}
        for slot in SLOTS:
            kids[slot] = self._kid_of(slot)
            self._key(kids[slot])
        return kids

    def describe(self) -> list[KeyInfo]:
        """The slots that have a key, without creating any."""
        if not self.root.is_dir():
            raise KeyStoreError(f"no key store at {self.root} (create it with `keys init`)")
        infos = []
        for slot in SLOTS:
            kid = self._read_pointer(slot)
            if kid is not None:
                algorithm = "Ed25519" if slot == SIGNING else f"RSA-{RSA_BITS[slot]}"
                infos.append(KeyInfo(slot, kid, algorithm, self.root / f"{kid}.pem"))
        return infos

    # -- internals ------------------------------------------------------------

    def _kid_of(self, slot: str) -> str:
        kid = self._current.get(slot)
        if kid is not None:
            return kid
        with self._slot_locks[slot]:
            kid = self._current.get(slot)
            if kid is None:
                self._prepare_dir()
                kid = self._read_pointer(slot) or self._create(slot)
                self._current[slot] = kid
        return kid

    def _key(self, kid: str) -> PrivateKey:
        key = self._keys.get(kid)
        if key is None:
            key = self._keys.setdefault(kid, self._load(kid))
        return key

    def _prepare_dir(self) -> None:
        with self._dir_lock:
            if self._dir_ready:
                return
            try:
                self.root.mkdir(mode=0o700, parents=True)
                os.chmod(self.root, 0o700)  # mkdir's mode is filtered by the umask
            except FileExistsError:
                pass
            except OSError as exc:
                raise KeyStoreError(f"cannot create key store {self.root}: {exc}") from exc
            if not self.root.is_dir():
                raise KeyStoreError(f"key store {self.root} is not a directory")
            self._check_private(self.root, "key store directory", "700")
            self._dir_ready = True

    def _check_private(self, path: Path, what: str, fix: str) -> None:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise KeyStoreError(
                f"{what} {path} is open to group or others (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod {fix} {path}"
            )

    def _read_pointer(self, slot: str) -> str | None:
        path = self.root / f"{slot}.kid"
        try:
            kid = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyStoreError(f"cannot read {path}: {exc}") from exc
        if not _KID.match(kid) or not kid.startswith(_slot_prefix(slot)):
            expected = _slot_prefix(slot)
            raise KeyStoreError(f"{path} does not hold a {expected}... key id: {kid[:40]!r}")
        return kid

    def _create(self, slot: str) -> str:
        with self._flock(slot):
            existing = self._read_pointer(slot)  # another process may have won the race
            if existing is not None:
                return existing
            key: PrivateKey = (
                ed25519.Ed25519PrivateKey.generate()
                if slot == SIGNING
                else rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[slot])
            )
            kid = key_id(key.public_key())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self._write(f"{kid}.pem", pem)
            self._write(f"{slot}.kid", f"{kid}\n".encode("ascii"))
            self._keys[kid] = key
            return kid

    @contextmanager
    def _flock(self, slot: str) -> Iterator[None]:
        path = self.root / f".{slot}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise KeyStoreError(
                            f"another process held {path} for over {self.lock_timeout:g} s"
                        ) from None
                    time.sleep(_LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _write(self, name: str, data: bytes) -> None:
        """Write ``name`` atomically: a 0600 temporary file, fsync, rename, fsync the dir."""
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _load(self, kid: str) -> PrivateKey:
        if not _KID.match(kid):
            raise UnknownKeyError(f"{kid[:80]!r} is not a key id of this key store")
        path = self.root / f"{kid}.pem"
        try:
            self._check_private(path, "private key file", "600")
            data = path.read_bytes()
        except FileNotFoundError:
            raise UnknownKeyError(f"no key {kid!r} in key store {self.root}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise KeyStoreError(f"{path} holds a {type(key).__name__}, not RSA or Ed25519")
        if key_id(key.public_key()) != kid:
            raise KeyStoreError(f"{path} holds key {key_id(key.public_key())}, not {kid}")
        return key
