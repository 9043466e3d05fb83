"""Mesh identity and security: CA, SVIDs, mTLS, request tokens, authorization.

`Auth` is the component every block carries (DESIGN.md); `MeshCA` and
`LocalIssuer` are what `eblocks ca` and the local supervisor use. See
docs/security.md.
"""

from eblocks.security.auth import Auth, Peer, mtls_mode
from eblocks.security.ca import DEFAULT_TRUST_DOMAIN, MeshCA
from eblocks.security.local import LocalIssuer
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
    "mtls_mode",
]
