"""The admin port under mTLS: who may ask it what, and how a holder reaches it.

Server side: a block whose mode is not ``disable`` serves its admin port with
`TlsFiles.admin_ssl` (client certificate optional; ``permissive`` also takes
plaintext). `admin_guard` is the admin app's one middleware::

    /healthz, /readyz        -> answered for anyone (kubelet cannot show a certificate)
    anything else, verified client certificate of this mesh (any kind) -> the route
    anything else, none (or plaintext) -> 401 unauthenticated (respond.py), audit, counted

Client side: `AdminAccess` gives the URL (``https`` exactly when `admin_tls`
says the target block's admin port is TLS, a pure function of the spec) and
the holder's client context: a block's SVID, the CLI's ``client/cli``, the
supervisor's ``client/supervisor``.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from eblocks.errors import IdentityError, UnauthenticatedError
from eblocks.respond import error_response
from eblocks.security.local import identity_folder
from eblocks.security.modes import admin_tls, uses_mtls
from eblocks.security.svid import Svid
from eblocks.security.tls import TlsFiles
from eblocks.spec.models import MeshSpec

if TYPE_CHECKING:
    from eblocks.security.auth import Auth

__all__ = ["OPEN_PATHS", "SUPERVISOR_HOLDER", "AdminAccess", "admin_guard"]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Admin routes that answer without a client certificate: the probes."""

SUPERVISOR_HOLDER = "supervisor"
"""The local supervisor's identity folder (``client/supervisor``)."""


def admin_guard(auth: Auth, origin: str) -> Middleware:
    """The admin app's middleware: probes open, every other route needs a mesh certificate."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            try:
                auth.admit_admin(request)
            except UnauthenticatedError as exc:
                return error_response(exc.with_origin(origin))
        return await handler(request)

    return guard


class AdminAccess:
    """How one holder reaches the admin ports of a mesh's instances."""

    __slots__ = ("_tls", "spec")

    def __init__(self, spec: MeshSpec, tls: TlsFiles | None) -> None:
        self.spec = spec
        self._tls = tls

    @classmethod
    def of(cls, spec: MeshSpec, state: Path, holder: str) -> AdminAccess:
        """``holder``'s access: its SVID in ``<state>/identity/<holder>`` (none without mTLS).

        The SVID is checked now (`Svid.read`): IdentityError names a missing,
        damaged or mixed-up file before any connection is tried.
        """
        if not uses_mtls(spec):
            return cls(spec, None)
        folder = identity_folder(state, holder)
        Svid.read(folder)
        return cls(spec, TlsFiles(folder))

    @property
    def ssl(self) -> ssl.SSLContext | None:
        """The holder's client context (server verified against the bundle), or None.

        Safe to pass for an ``http`` URL too: urllib and aiohttp use it only for https.
        """
        return self._tls.client_ssl() if self._tls is not None else None

    def tls(self, block: str) -> bool:
        return self._tls is not None and admin_tls(self.spec, block)

    def url(self, block: str, host: str, port: int, path: str) -> str:
        """``http(s)://host:port/path`` of an instance of ``block``."""
        scheme = "https" if self.tls(block) else "http"
        address = f"[{host}]" if ":" in host else host
        return f"{scheme}://{address}:{port}{path}"

    def row_url(self, row: Mapping[str, Any], path: str) -> str:
        """The URL of ``path`` on the instance of a state-dir row (block, host, admin_port)."""
        return self.url(str(row["block"]), str(row["host"]), int(row["admin_port"]), path)

    def session(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        """A client session that shows the holder's certificate to every https URL."""
        context = self.ssl
        connector = aiohttp.TCPConnector(ssl=context) if context is not None else None
        return aiohttp.ClientSession(timeout=timeout, connector=connector)

    def refresh(self) -> None:
        """Load a renewed SVID into the same context (a long-running holder calls this)."""
        if self._tls is not None:
            with contextlib.suppress(IdentityError):  # half-written: keep the current one
                self._tls.reload()
