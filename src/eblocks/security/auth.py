"""`Auth`: the security component inside every block (DESIGN.md's contract).

``server_ssl()`` / ``client_ssl()`` are the mTLS contexts, ``mint(aud)`` signs a
request token, ``verify(token)`` checks one, ``authorize(peer, request)``
returns a `Decision`. `admit` runs the inbound checks in their order::

    TLS peer identity (trust domain, mesh) -> request token -> end-user token
      -> authorization -> the handler

and turns each refusal into `UnauthenticatedError` (401) or `ForbiddenError`
(403), which `respond.py` sends with ``x-eblocks-error``. Authorization sees
the method and path the request is for where the block's routes and faults
take them (`eblocks.policies.target.request_line`): a handler block's
``x-eblocks-path``, an application block's real path, what a sidecar's
program is asked. Every deny writes one audit line naming the rule.
Counters (the ``/v1/security`` admin endpoint) say how many requests each
check refused and how many plaintext connections a ``permissive`` block
accepted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

from eblocks._types import Call, Layer, Send
from eblocks.errors import ForbiddenError, IdentityError, UnauthenticatedError
from eblocks.message import PATTERN_HEADER, Message
from eblocks.policies.target import Served, request_line
from eblocks.security.anomaly import AnomalyDetector
from eblocks.security.local import CLI_HOLDER, identity_folder
from eblocks.security.modes import mtls_mode, uses_mtls
from eblocks.security.policy import (
    Decision,
    PolicyEngine,
    RequestFacts,
    served_as,
)
from eblocks.security.svid import Identity, Svid, load_certs
from eblocks.security.tls import TlsFiles, peer_identity
from eblocks.security.tokens import (
    TOKEN_HEADER,
    USER_HEADER,
    Claims,
    EndUserVerifier,
    ReplayCache,
    TokenMinter,
    TokenVerifier,
)
from eblocks.spec.models import MeshSpec, MtlsMode

__all__ = ["Auth", "Peer", "mtls_mode"]

audit = logging.getLogger("eblocks.audit")
log = logging.getLogger("eblocks.security")


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is calling: the verified identity (None over plaintext) and the end user."""

    identity: Identity | None
    user: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # the anomaly detector's key: the SPIFFE ID, or addr:<ip>
    trust: float = 1.0  # the detector's trust score of the source (ctx.trust)

    def __str__(self) -> str:
        return str(self.identity) if self.identity is not None else "plaintext"


def _addr_key(request: web.Request) -> str:
    return f"addr:{request.remote or '?'}"


class Auth:
    """Identity material and checks of one holder (an instance, or the CLI)."""

    def __init__(
        self,
        spec: MeshSpec,
        folder: Path,
        *,
        block: str | None = None,
        spec_dir: Path | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.block = block
        sec = spec.security
        self.mode: MtlsMode = mtls_mode(spec, block) if block is not None else sec.mtls
        self.files = TlsFiles(folder)
        self._svid = Svid.read(folder)
        self.identity = self._svid.identity
        if (self.identity.trust_domain, self.identity.mesh) != (sec.trust_domain, spec.mesh):
            raise IdentityError(f"{folder}: SVID {self.identity} is not of mesh {spec.mesh!r}")
        self.plain_targets = frozenset(b for b in spec.blocks if mtls_mode(spec, b) == "disable")
        self.policy = PolicyEngine(spec)
        self.served: Served = served_as(spec, block)
        self._tokens = sec.tokens.mode
        self._minter = TokenMinter(lambda: self._svid, sec.tokens.ttl, now=now)
        self._verifier = TokenVerifier(
            self.identity,
            self._anchors,
            skew=sec.tokens.skew,
            replay=ReplayCache(sec.tokens.replay_cache, now=now),
            reuse=sec.tokens.reuse,
            now=now,
        )
        self._reuse = sec.tokens.reuse
        self._end_user: EndUserVerifier | None = None
        self._user_required = False
        if sec.end_user is not None and block is not None:
            eu = sec.end_user
            self._end_user = EndUserVerifier(
                (spec_dir or Path.cwd()) / eu.jwks_file,
                issuer=eu.issuer,
                audience=eu.audience,
                algorithms=eu.algorithms,
                skew=sec.tokens.skew,
            )
            self._user_required = eu.required
        self._audiences: dict[str, str] = {}
        self._anchor_stamp = -1
        self._anchor_cache: tuple[x509.Certificate, ...] = ()
        self.counters: collections.Counter[str] = collections.Counter()
        self.anomaly: AnomalyDetector | None = None
        if sec.anomaly.enabled and block is not None:
            self.anomaly = AnomalyDetector(
                sec.anomaly, now=time.monotonic, on_quarantine=self._quarantined
            )

    @classmethod
    def for_holder(
        cls,
        spec: MeshSpec,
        state: Path,
        holder: str,
        *,
        block: str | None = None,
        spec_dir: Path | None = None,
    ) -> Auth | None:
        """The holder's `Auth` from ``<state>/identity/<holder>``; None when mTLS is off."""
        if not uses_mtls(spec):
            return None
        return cls(spec, identity_folder(state, holder), block=block, spec_dir=spec_dir)

    @classmethod
    def for_cli(cls, spec: MeshSpec, state: Path | str) -> Auth | None:
        """The identity `eblocks up` issued to the CLI and to scripts, in the mesh's state dir
        (``.eblocks/<mesh>``); None when mTLS is off."""
        return cls.for_holder(spec, Path(state), CLI_HOLDER)

    # -- the contract ------------------------------------------------------------------

    def server_ssl(self) -> Any:
        """The listening context, or None when this block's port is plaintext (``disable``)."""
        if self.mode == "disable":
            return None
        return self.files.ingress_ssl() if self.mode == "ingress" else self.files.server_ssl()

    def client_ssl(self) -> Any:
        return self.files.client_ssl()

    def audience(self, block: str) -> str:
        aud = self._audiences.get(block)
        if aud is None:
            aud = str(Identity(self.identity.trust_domain, self.identity.mesh, block))
            self._audiences[block] = aud
        return aud

    def mint(self, aud: str, user: str | None = None) -> str:
        """A request token for a call to block ``aud``."""
        return self._minter.mint(self.audience(aud), user)

    def verify(self, token: str, peer: Identity | None = None) -> Claims:
        return self._verifier.verify(token, peer)

    def authorize(self, peer: Peer, request: RequestFacts) -> Decision:
        return self.policy.authorize(request)

    # -- inbound -------------------------------------------------------------------------

    def admit(self, request: web.Request) -> Peer:
        """Run every inbound check on ``request``; the caller, or a 401/403 error."""
        key = ""
        try:
            identity = self._tls_identity(request)
            key = str(identity) if identity is not None else _addr_key(request)
            trust = self._admit_source(key, request)
            if self._tokens == "off" and self._end_user is None:
                peer = Peer(identity, source=key, trust=trust)
            else:
                peer = self._tokens_of(request, identity, key, trust)
        except UnauthenticatedError as exc:
            self.counters["unauthenticated"] += 1
            source = key or _addr_key(request)  # the identity, else the address it came from
            audit.warning(
                "unauthenticated %s %s from %s at %s: %s",
                request.method,
                request.path,
                source.removeprefix("addr:"),
                self.block,
                exc,
            )
            if self.anomaly is not None:
                self.anomaly.record(source, auth_failure=True)
            raise
        if self.policy.trivial:
            if self.anomaly is not None:
                self.anomaly.record(key)
            return peer
        method, path = request_line(self.served, request)
        facts = RequestFacts(
            target=self.block or "",
            source=peer.identity,
            method=method,
            path=path,
            pattern=request.headers.get(PATTERN_HEADER),
            claims=peer.claims,
        )
        decision = self.policy.authorize(facts)
        if self.anomaly is not None:
            self.anomaly.record(key, denied=not decision.allowed)
        if not decision.allowed:
            self.counters["forbidden"] += 1
            audit.warning(
                "deny %s -> %s %s %s rule=%s user=%s",
                peer,
                self.block,
                method,
                path,
                decision.rule,
                peer.user or "-",
            )
            raise ForbiddenError(
                f"{peer} may not call {self.block} {method} {path}: {decision.reason}",
                detail={"rule": decision.rule},
            )
        return peer

    def record_error(self, peer: Peer) -> None:
        """A request of ``peer`` ended in a 4xx mesh error (for the error-ratio check)."""
        if self.anomaly is not None and peer.source:
            self.anomaly.record(peer.source, error=True)

    def _admit_source(self, key: str, request: web.Request) -> float:
        if self.anomaly is None:
            return 1.0
        allowed, trust = self.anomaly.allow(key)
        if not allowed:
            self.counters["quarantine_refused"] += 1
            raise ForbiddenError(
                f"{key} is quarantined at {self.block}: {self.anomaly.sources[key].reason}",
                detail={"rule": "quarantine", "retry_after": self.anomaly.spec.cooldown},
            )
        return trust

    def _quarantined(self, source: str, why: str) -> None:
        self.counters["quarantined"] += 1
        audit.warning(
            "quarantine %s at %s for %gs: %s",
            source,
            self.block,
            self.spec.security.anomaly.cooldown,
            why,
        )

    def _tls_identity(self, request: web.Request) -> Identity | None:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            if self.mode == "strict":  # only if a plaintext socket fed a strict block
                raise UnauthenticatedError("this block accepts mTLS only")
            return None
        if self.mode == "ingress" and not ssl_object.getpeercert():
            return None  # an external client: TLS without a client certificate
        return self._mesh_identity(ssl_object)

    def _mesh_identity(self, ssl_object: Any) -> Identity:
        """The verified peer's identity if it is of this trust domain and mesh, else 401."""
        try:
            identity = peer_identity(ssl_object)
        except IdentityError as exc:
            raise UnauthenticatedError(str(exc)) from exc
        if (identity.trust_domain, identity.mesh) != (
            self.identity.trust_domain,
            self.identity.mesh,
        ):
            raise UnauthenticatedError(
                f"peer {identity} is outside trust domain {self.identity.trust_domain!r} "
                f"mesh {self.identity.mesh!r}",
                detail={"peer": str(identity)},
            )
        return identity

    def _tokens_of(
        self, request: web.Request, identity: Identity | None, key: str, trust: float
    ) -> Peer:
        user: str | None = None
        claims: Mapping[str, Any] = {}
        token = request.headers.get(TOKEN_HEADER)
        if token is not None and self._tokens != "off":
            verified = self._verifier.verify(token, identity)
            identity, user = verified.caller, verified.user
        elif self._tokens == "required" and not (self.mode == "ingress" and identity is None):
            # (an outside client of an ingress block has no SVID to sign a token with;
            # its credential is the end-user JWT, checked below)
            raise UnauthenticatedError(
                "this block requires a request token", detail={"token": "missing"}
            )
        entry = identity is None or identity.kind == "client"
        if self._end_user is not None and entry:
            bearer = request.headers.get("authorization", "")
            if bearer.lower().startswith("bearer "):
                user, claims = self._end_user.verify(bearer[7:].strip())
            elif self._user_required:
                raise UnauthenticatedError(
                    "calls into the mesh need an end-user token (Authorization: Bearer)",
                    detail={"user_token": "missing"},
                )
        return Peer(identity, user, claims, source=key, trust=trust)

    # -- the admin port ------------------------------------------------------------------

    def admin_ssl(self) -> Any:
        """The admin port's context (client certificate optional), None when ``disable``."""
        return None if self.mode == "disable" else self.files.admin_ssl()

    def admit_admin(self, request: web.Request) -> Identity:
        """The mesh identity asking the admin port for data (any kind), or a 401.

        Not the PM port's checks: no token, no authorization rule, no quarantine;
        a verified client certificate of this trust domain and mesh is the credential.
        """
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        try:
            if ssl_object is None:
                raise UnauthenticatedError("the admin API serves data over mTLS only")
            if not ssl_object.getpeercert():
                raise UnauthenticatedError("the admin API needs a client certificate of this mesh")
            return self._mesh_identity(ssl_object)
        except UnauthenticatedError as exc:
            self.counters["admin_unauthenticated"] += 1
            audit.warning(
                "unauthenticated admin %s %s from %s at %s: %s",
                request.method,
                request.path,
                request.remote or "?",
                self.block,
                exc,
            )
            raise

    def admin_plaintext_connection(self) -> None:
        self.counters["admin_plaintext_connections"] += 1

    def admin_connection_refused(self, kind: str, peer: str, detail: str) -> None:
        """A connection to the admin port refused below HTTP (counted as ``admin_<kind>``)."""
        self.connection_refused(f"admin_{kind}", peer, detail)

    # -- refusals below HTTP ----------------------------------------------------------------

    def plaintext_connection(self) -> None:
        self.counters["plaintext_connections"] += 1

    def connection_refused(self, kind: str, peer: str, detail: str) -> None:
        """A connection refused below HTTP: ``plaintext`` (strict) or a failed ``handshake``."""
        self.counters[f"{kind}_refused"] += 1
        audit.warning("refused %s connection from %s at %s: %s", kind, peer, self.block, detail)

    # -- outbound ------------------------------------------------------------------------

    def token_layer(self) -> Layer | None:
        """The client stack's token layer (innermost: a token per try, reused over mTLS).

        With ``tokens.reuse`` a target reached over mTLS gets the minter's current
        token for it and the end user; a plaintext target (``disable``) and every
        target without ``reuse`` get a fresh single-use token.
        """
        if self._tokens == "off":
            return None
        minter, reuse, plain = self._minter, self._reuse, self.plain_targets

        def layer(inner: Send) -> Send:
            async def send(call: Call) -> Message:
                msg = call.message
                user = msg.headers.get(USER_HEADER)
                aud = self.audience(call.target)
                if reuse and call.target not in plain:
                    token = minter.token(aud, user)
                else:
                    token = minter.mint(aud, user)
                if user is None:
                    msg = msg.replace(headers={TOKEN_HEADER: token})
                else:
                    headers = {k: v for k, v in msg.headers.items() if k != USER_HEADER}
                    headers[TOKEN_HEADER] = token
                    msg = Message(msg.body, headers)
                return await inner(call.with_message(msg))

            return send

        return layer

    # -- rotation ------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload the SVID files if the supervisor rewrote them; True when they changed.

        The new files are checked first (`Svid.read`: the key is the
        certificate's, the chain verifies against the bundle; the identity is
        this holder's); IdentityError when they are not, and the current SVID
        stays in use for TLS and tokens alike.
        """
        if not self.files.changed():
            return False
        svid = Svid.read(self.files.folder)
        if svid.identity != self.identity:
            raise IdentityError(
                f"{self.files.folder}: the new SVID is {svid.identity}, not {self.identity}"
            )
        if not self.files.reload():
            return False
        self._svid = svid
        self.counters["rotations"] += 1
        return True

    async def watch(self, interval: float = 1.0) -> None:
        """Look for a rotated SVID every ``interval`` seconds until cancelled."""
        refused = ""
        while True:
            await asyncio.sleep(interval)
            try:
                self.refresh()
            except IdentityError as exc:  # half-written, or damaged: told once, tried again
                if str(exc) != refused:
                    log.warning("SVID reload failed (keeping the current one): %s", exc)
                refused = str(exc)
            else:
                refused = ""

    def _anchors(self) -> tuple[x509.Certificate, ...]:
        bundle = self.files.bundle_file
        stamp = bundle.stat().st_mtime_ns
        if self._anchor_stamp != stamp:
            self._anchor_cache = tuple(load_certs(bundle.read_bytes()))
            self._anchor_stamp = stamp
        return self._anchor_cache

    def stats(self) -> dict[str, Any]:
        return {
            "identity": str(self.identity),
            "mtls": self.mode,
            "tokens": self._tokens,
            "svid_not_after": self._svid.not_after.isoformat(),
            "counters": dict(self.counters),
            "quarantined": self.anomaly.quarantined() if self.anomaly is not None else {},
        }
