"""The local path to an identity: the supervisor holds the CA and writes each SVID.

``eblocks up`` (mTLS not ``disable``) makes sure ``<state>/ca/`` exists (creating
a root of ``security.key_type`` if not), then before starting an instance
writes its SVID to ``<state>/identity/<instance>/`` and one for the CLI to
``<state>/identity/cli/``. `LocalIssuer.renew_due` re-issues every SVID past
half its lifetime; the instances notice the new files and reload them
(`TlsFiles.reload`). The root key never leaves the supervisor's machine; other
hosts obtain SVIDs from a CA role against a join token (`eblocks.security.join`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from eblocks.errors import SecurityError
from eblocks.security.identity import Identity, replace_file
from eblocks.security.modes import uses_mtls
from eblocks.spec.models import MeshSpec

if TYPE_CHECKING:
    from eblocks.security.ca import MeshCA
    from eblocks.security.svid import Svid

__all__ = ["CLI_HOLDER", "LocalIssuer", "ca_folder", "identity_folder", "passphrase_from_env"]

log = logging.getLogger("eblocks.security")

CLI_HOLDER = "cli"
TRUST_SPREAD = 3.0
"""Seconds between giving every holder a rotated CA's bundle and issuing from it: every
instance reloads its files within a second (`Auth.watch`), so by then all trust the new
root before any peer presents a certificate from it."""


def ca_folder(state: Path) -> Path:
    return state / "ca"


def identity_folder(state: Path, holder: str) -> Path:
    return state / "identity" / holder


def passphrase_from_env() -> bytes | None:
    value = os.environ.get("EBLOCKS_CA_PASSPHRASE")
    return value.encode() if value else None


class LocalIssuer:
    """Issues and renews the SVIDs of every holder on this machine."""

    def __init__(
        self, spec: MeshSpec, state: Path, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.spec = spec
        self.state = state
        self._ca: MeshCA | None = None
        self._issued: dict[str, tuple[Identity, Svid]] = {}
        self._clock = clock
        self._spreading_until: float | None = None
        """While a rotated CA's bundle spreads: when issuing from it may start."""

    @property
    def enabled(self) -> bool:
        return uses_mtls(self.spec)

    def ca(self) -> MeshCA:
        from eblocks.security.ca import MeshCA  # cryptography: only once mTLS is used

        if self._ca is None:
            folder = ca_folder(self.state)
            sec = self.spec.security
            if MeshCA.exists(folder):
                self._ca = MeshCA.load(folder, passphrase_from_env())
            else:
                self._ca = MeshCA.init(
                    folder,
                    sec.trust_domain,
                    key_type=sec.key_type,
                    passphrase=passphrase_from_env(),
                )
                log.info("created the mesh CA in %s", folder)
            if self._ca.trust_domain != sec.trust_domain:
                raise SecurityError(
                    f"the mesh CA in {folder} is for trust domain {self._ca.trust_domain!r}, "
                    f"the spec says {sec.trust_domain!r} (`eblocks ca init` a new one)"
                )
        return self._ca

    def trust_new_ca(self) -> list[str]:
        """Phase one of a CA rotation: every holder trusts the new root, keeping its SVID.

        The new bundle (old and new roots) is written to each holder's folder;
        nothing is issued from the new CA until `TRUST_SPREAD` has passed
        (`renew_due` then calls `reload_ca`), so no peer ever meets a
        certificate from a root it does not trust yet.
        """
        self._ca = None
        bundle = self.ca().bundle
        for holder in self._issued:
            replace_file(identity_folder(self.state, holder) / "bundle.pem", bundle, 0o644)
        self._spreading_until = self._clock() + TRUST_SPREAD
        log.info("the rotated mesh CA is trusted by every holder; issuing from it shortly")
        return sorted(self._issued)

    def reload_ca(self) -> None:
        """Re-issue everything from a rotated CA (`eblocks ca rotate`).

        A gossip key the supervisor generated rotates with it (a key the spec
        pins with ``key``/``key_file`` stays: it is the operator's).
        """
        self._ca = None
        self._spreading_until = None
        for holder, (identity, _) in list(self._issued.items()):
            self.issue(holder, identity)
        discovery = self.spec.discovery
        generated = discovery.key is None and discovery.key_file is None
        if discovery.mode == "gossip" and generated and (self.state / "gossip.key").exists():
            from eblocks.security.gossipkey import rotate_key_file

            rotate_key_file(self.state / "gossip.key")
            log.info("rotated the gossip key with the mesh CA")

    def issue(self, holder: str, identity: Identity) -> Svid:
        ca = self.ca()
        ttl = dt.timedelta(seconds=self.spec.security.svid_ttl)
        svid = ca.issue(identity, ttl)
        svid.write(identity_folder(self.state, holder), ca.bundle)
        self._issued[holder] = (identity, svid)
        return svid

    def issue_block(self, holder: str, block: str) -> Svid:
        sec = self.spec.security
        return self.issue(holder, Identity(sec.trust_domain, self.spec.mesh, block))

    def issue_client(self, name: str = CLI_HOLDER) -> Svid:
        sec = self.spec.security
        return self.issue(name, Identity(sec.trust_domain, self.spec.mesh, name, "client"))

    def renew_due(self, now: dt.datetime | None = None) -> list[str]:
        """Re-issue every SVID past half its life (or whose CA rotated); the holders renewed.

        A rotated CA takes two calls at least `TRUST_SPREAD` apart: the first
        gives every holder the new bundle (`trust_new_ca`), a later one issues
        from the new CA (`reload_ca`).
        """
        now = now or dt.datetime.now(dt.UTC)
        if self._spreading_until is not None:
            if self._clock() < self._spreading_until:
                return []
            self.reload_ca()
            return sorted(self._issued)
        if self._ca is not None and self._ca_changed():
            return self.trust_new_ca()
        renewed = []
        for holder, (identity, svid) in list(self._issued.items()):
            if now >= svid.renew_at():
                self.issue(holder, identity)
                renewed.append(holder)
        return renewed

    def next_renewal(self) -> dt.datetime | None:
        return min((svid.renew_at() for _, svid in self._issued.values()), default=None)

    def _ca_changed(self) -> bool:
        from cryptography.hazmat.primitives import serialization

        assert self._ca is not None
        try:
            current = (ca_folder(self.state) / "ca.pem").read_bytes()
        except FileNotFoundError:
            return False
        return current != self._ca.cert.public_bytes(serialization.Encoding.PEM)
