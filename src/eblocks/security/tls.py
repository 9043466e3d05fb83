"""mTLS contexts built once from an SVID folder and reloaded in place on rotation.

One context per use (the mTLS server, the ingress and admin servers, the
client) per process, shared by every listener and pooled connection (a context
is expensive to build; a handshake with a reused one is not).
`TlsFiles.reload()` loads a rotated SVID into the *same* context objects:
connections that are open keep their session, every handshake after the
reload presents the new certificate, so rotation drops nothing. Trust anchors
are only ever added (OpenSSL cannot remove one from a live context); a removed
root stops being trusted when the process restarts.

Peers are verified against the mesh bundle (TLS 1.3 only, no hostnames: the
identity is the SPIFFE ID in the URI SAN, checked by `peer_identity`).
"""

from __future__ import annotations

import logging
import ssl
import weakref
from pathlib import Path
from typing import Any

from eblocks.errors import IdentityError
from eblocks.security.identity import Identity

__all__ = ["TlsFiles", "peer_identity"]

log = logging.getLogger("eblocks.security.tls")


class TlsFiles:
    """``svid.pem``/``svid.key``/``bundle.pem`` of one holder as live SSL contexts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stamp: tuple[int, ...] = ()
        self._server: ssl.SSLContext | None = None
        self._ingress: ssl.SSLContext | None = None
        self._admin: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None
        self.reloads = 0
        self._check_present()

    @property
    def cert_file(self) -> Path:
        return self.folder / "svid.pem"

    @property
    def key_file(self) -> Path:
        return self.folder / "svid.key"

    @property
    def bundle_file(self) -> Path:
        return self.folder / "bundle.pem"

    def server_ssl(self) -> ssl.SSLContext:
        if self._server is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.verify_mode = ssl.CERT_REQUIRED
            self._server = self._load(ctx)
        return self._server

    def ingress_ssl(self) -> ssl.SSLContext:
        """A server context whose client certificate is optional (an ingress block).

        Mesh callers still present their SVID and are verified when they do;
        external clients (browsers, curl) connect with server authentication only.
        """
        if self._ingress is None:
            self._ingress = self._optional_client()
        return self._ingress

    def admin_ssl(self) -> ssl.SSLContext:
        """The admin port's context: client certificate optional, verified when shown.

        Probes (kubelet's too) connect without one; the admin app's guard
        (`eblocks.security.admin`) refuses every other route to a caller without one.
        """
        if self._admin is None:
            self._admin = self._optional_client()
        return self._admin

    def client_ssl(self) -> ssl.SSLContext:
        if self._client is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False  # the SPIFFE ID is the name; see peer_identity
            ctx.verify_mode = ssl.CERT_REQUIRED
            self._client = self._load(ctx)
        return self._client

    def _optional_client(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return self._load(ctx)

    def changed(self) -> bool:
        """Whether the files were rewritten since they were last loaded."""
        return self._current_stamp() != self._stamp

    def reload(self) -> bool:
        """Load the files again if they changed; True when they did."""
        if not self.changed():
            return False
        for ctx in (self._server, self._ingress, self._admin, self._client):
            if ctx is not None:
                self._load(ctx)
        self.reloads += 1
        log.info("reloaded SVID from %s", self.folder)
        return True

    def _load(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        stamp = self._current_stamp()
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            ctx.load_verify_locations(cafile=str(self.bundle_file))
        except (OSError, ssl.SSLError) as exc:
            raise IdentityError(f"{self.folder}: cannot load the SVID: {exc}") from exc
        self._stamp = stamp
        return ctx

    def _current_stamp(self) -> tuple[int, ...]:
        try:
            return tuple(
                p.stat().st_mtime_ns for p in (self.cert_file, self.key_file, self.bundle_file)
            )
        except FileNotFoundError:
            return self._stamp  # mid-replace: keep what we have, look again later

    def _check_present(self) -> None:
        missing = [
            p.name for p in (self.cert_file, self.key_file, self.bundle_file) if not p.exists()
        ]
        if missing:
            raise IdentityError(f"{self.folder}: missing {', '.join(missing)} (no SVID issued?)")


_PEERS: weakref.WeakKeyDictionary[Any, Identity] = weakref.WeakKeyDictionary()


def peer_identity(ssl_object: Any) -> Identity:
    """The mesh identity of a verified TLS peer, parsed once per connection."""
    known = _PEERS.get(ssl_object)
    if known is not None:
        return known
    cert = ssl_object.getpeercert()
    if not cert:
        raise IdentityError("the peer presented no certificate")
    uris = [value for kind, value in cert.get("subjectAltName", ()) if kind == "URI"]
    if len(uris) != 1:
        raise IdentityError(f"the peer certificate has {len(uris)} URI SANs, an SVID has one")
    identity = Identity.parse(uris[0])
    _PEERS[ssl_object] = identity
    return identity
