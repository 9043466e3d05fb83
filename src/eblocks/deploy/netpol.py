"""NetworkPolicies: each block's pods accept what the call graph says, and nothing else.

A policy selects one block's pods, so they deny every ingress it does not list:

- the block's port from its callers (`edges.callers`): a pod selector per
  calling block, or from anywhere when a caller is `OUTSIDE` (an entry point);
- the gossip port (UDP) from every block pod of the mesh;
- the admin port from anywhere: kubelet probes and a Prometheus in another
  namespace scrape it.

Egress is left open (DNS, the CA, the API server for managers). With
``mesh_wide`` every block pod of the mesh may call every block (handlers that
call blocks no pattern names, with ``ctx.call``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eblocks.deploy.edges import OUTSIDE, Edge, describe
from eblocks.deploy.names import ADMIN_PORT, HTTP_PORT, Names, gossip_port
from eblocks.spec.models import MeshSpec

__all__ = ["block_policy", "ingress_peers"]


def ingress_peers(
    names: Names, sources: Iterable[str], *, mesh_wide: bool = False
) -> list[dict[str, Any]] | None:
    """The ``from`` list admitting ``sources``; None admits any source."""
    found = set(sources)
    if OUTSIDE in found:
        return None
    if mesh_wide:
        return [{"podSelector": {"matchLabels": names.selector("block")}}]
    return [
        {"podSelector": {"matchLabels": names.selector("block", source)}}
        for source in sorted(found)
    ]


def block_policy(
    spec: MeshSpec,
    names: Names,
    block: str,
    sources: Iterable[str],
    edges: Iterable[Edge],
    *,
    mesh_wide: bool = False,
) -> dict[str, Any]:
    """The NetworkPolicy of ``block``'s pods."""
    http: dict[str, Any] = {"ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}
    peers = ingress_peers(names, sources, mesh_wide=mesh_wide)
    if peers is not None:
        http["from"] = peers
    gossip = {
        "from": [{"podSelector": {"matchLabels": names.selector("block")}}],
        "ports": [{"port": gossip_port(spec), "protocol": "UDP"}],
    }
    admin = {"ports": [{"port": ADMIN_PORT, "protocol": "TCP"}]}
    why = describe(edge for edge in edges if edge.target == block).get(block, ())
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": names.block(block),
            "namespace": names.namespace,
            "labels": names.labels("block", block),
            "annotations": {
                "eblocks.io/callers": ", ".join(why) if why else "any (no pattern calls it)"
            },
        },
        "spec": {
            "podSelector": {"matchLabels": names.selector("block", block)},
            "policyTypes": ["Ingress"],
            "ingress": [http, gossip, admin],
        },
    }
