"""mTLS modes: a pure function of the spec, so every holder computes the same answer.

A block's PM port and its admin port follow the block's mode (its own, else the
mesh's); a caller that has the spec therefore knows, without asking, whether a
target speaks TLS. Kept apart from `auth` so the CLI can ask without importing
`cryptography`.
"""

from __future__ import annotations

from eblocks.spec.models import MeshSpec, MtlsMode

__all__ = ["admin_tls", "mtls_mode", "uses_mtls"]


def mtls_mode(spec: MeshSpec, block: str) -> MtlsMode:
    """A block's mTLS mode: its own, else the mesh's (``ingress`` for an ingress gateway)."""
    spec_of = spec.blocks.get(block)
    own = spec_of.security if spec_of is not None else None
    if own is not None and own.mtls is not None:
        return own.mtls
    mode = spec.security.mtls
    gateway = spec_of.gateway if spec_of is not None else None
    if mode == "strict" and gateway is not None and gateway.kind == "ingress":
        return "ingress"  # outside clients have no SVID; mesh callers still show theirs
    return mode


def uses_mtls(spec: MeshSpec) -> bool:
    """Whether any holder of the mesh needs an SVID (some block's mode is not ``disable``)."""
    modes = {spec.security.mtls} | {mtls_mode(spec, b) for b in spec.blocks}
    return modes != {"disable"}


def admin_tls(spec: MeshSpec, block: str) -> bool:
    """Whether the instances of ``block`` serve their admin port over TLS.

    Exactly when the block's own port does: any mode but ``disable`` (``permissive``
    also takes plaintext, but answers only the probes over it).
    """
    return mtls_mode(spec, block) != "disable"  # (then the mesh uses mTLS: it has an SVID)
