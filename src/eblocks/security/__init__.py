"""Mesh identity and security: CA, SVIDs, mTLS, request tokens, authorization.

`Auth` is the component every block carries (DESIGN.md); `MeshCA` and
`LocalIssuer` are what `eblocks ca` and the local supervisor use. See
docs/security.md.

The names load on first use: a process that never touches security (a block
without mTLS, `eblocks validate`) does not pay for importing `cryptography`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eblocks._lazy import lazy_exports

if TYPE_CHECKING:
    from eblocks.security.auth import Auth, Peer
    from eblocks.security.ca import DEFAULT_TRUST_DOMAIN, MeshCA
    from eblocks.security.local import LocalIssuer
    from eblocks.security.modes import admin_tls, mtls_mode
    from eblocks.security.policy import Decision, PolicyEngine, RequestFacts
    from eblocks.security.svid import Identity, Svid

__all__ = [
    "DEFAULT_TRUST_DOMAIN",
    "Auth",
    "Decision",
    "Identity",
    "LocalIssuer",
    "MeshCA",
    "Peer",
    "PolicyEngine",
    "RequestFacts",
    "Svid",
    "admin_tls",
    "mtls_mode",
]

_HOME = {
    "Auth": "auth",
    "Peer": "auth",
    "admin_tls": "modes",
    "mtls_mode": "modes",
    "DEFAULT_TRUST_DOMAIN": "ca",
    "MeshCA": "ca",
    "LocalIssuer": "local",
    "Decision": "policy",
    "PolicyEngine": "policy",
    "RequestFacts": "policy",
    "Identity": "svid",
    "Svid": "svid",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
