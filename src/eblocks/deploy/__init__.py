"""Deployment renderers: a mesh spec as Kubernetes manifests or Dockerfiles.

`eblocks render mesh.yaml --target kubernetes|docker` (docs/kubernetes.md).
"""

from eblocks.deploy.edges import OUTSIDE, Edge, callers, pattern_edges
from eblocks.deploy.kubernetes import (
    KUBERNETES_VERSION,
    KubeOptions,
    cluster_spec,
    kubernetes_files,
    render_kubernetes,
)
from eblocks.deploy.names import Names, deployment_name
from eblocks.deploy.output import write_files
from eblocks.deploy.policy import PolicyTrust

__all__ = [
    "KUBERNETES_VERSION",
    "OUTSIDE",
    "Edge",
    "KubeOptions",
    "Names",
    "PolicyTrust",
    "callers",
    "cluster_spec",
    "deployment_name",
    "kubernetes_files",
    "pattern_edges",
    "render_kubernetes",
    "write_files",
]
