"""Blocks whose PM Eblocks provides: the ingress and egress gateways (docs/gateways.md)."""

from __future__ import annotations

import ssl
from pathlib import Path

from eblocks.proxy.egress import Egress, load_cert_pair
from eblocks.proxy.ingress import ingress_app
from eblocks.spec.gateway import GatewayTls

__all__ = ["Egress", "ingress_app", "operator_ssl"]


def operator_ssl(tls: GatewayTls, spec_dir: Path, mesh_bundle: Path | None) -> ssl.SSLContext:
    """The ingress gateway's server context: the operator's certificate.

    A client certificate is optional; when one is presented it must chain to the
    mesh's CA (``mesh_bundle``), so a block calling through the gateway is still
    known by its SVID. Without a mesh bundle (mTLS off), none is asked for.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    load_cert_pair(ctx, spec_dir / tls.cert, spec_dir / tls.key, "gateway tls")
    if mesh_bundle is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(mesh_bundle)
    return ctx
