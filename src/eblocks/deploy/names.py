"""Names, labels, ports and paths shared by the renderers and by code running in a pod.

Every object of a block is named ``<mesh>-<block>``; the mesh-wide objects are
``<mesh>-spec`` (the ConfigMap), ``<mesh>-policy`` (the policy public key),
``<mesh>-gossip`` (the headless Service of the gossip seeds), ``<mesh>-gossip-key``,
``<mesh>-ca`` and its Secrets; a gateway's files are ``<mesh>-<block>-tls|egress``. Code that
acts on the cluster (a `KubernetesScaler` patching a worker pool) finds a
block's Deployment with `deployment_name`, never by re-deriving the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eblocks.errors import RenderError
from eblocks.spec.models import MeshSpec

__all__ = [
    "ADMIN_PORT",
    "CA_PORT",
    "DEFAULT_GOSSIP_PORT",
    "GATEWAY_DIR",
    "HTTP_PORT",
    "POLICY_DIR",
    "RESERVED_BLOCKS",
    "RUN_AS",
    "SPEC_DIR",
    "SPEC_FILE",
    "STATE_DIR",
    "Names",
    "deployment_name",
    "gossip_port",
]

HTTP_PORT = 8080
"""The block's own (PM) port in every container."""
ADMIN_PORT = 9090
"""The admin API: /healthz /readyz /metrics /v1/..."""
DEFAULT_GOSSIP_PORT = 7946
"""Gossip UDP port when the spec leaves ``discovery.port`` at 0 (any free port)."""
CA_PORT = 8443
"""The CA role's issuing endpoint."""

SPEC_DIR = "/etc/eblocks"
SPEC_FILE = f"{SPEC_DIR}/mesh.yaml"
STATE_DIR = "/var/lib/eblocks"
"""The instance's ``--state-dir``: run files, and the gossip key mounted from a Secret."""
POLICY_DIR = "/var/run/eblocks/policy"
"""The ConfigMap ``<mesh>-policy`` (``signing.pub``, ``run``): the instance's ``--policy-dir``."""
GATEWAY_DIR = "/var/run/eblocks/gateway"
"""Where a gateway's Secrets are mounted (``tls/``, ``egress/``); the rendered spec names them."""
RUN_AS = 10001
"""The unprivileged uid (and gid) every container runs as; the Dockerfiles create it."""

RESERVED_BLOCKS = frozenset({"ca", "gossip", "gossip-key", "policy", "spec"})
"""Block names whose objects would collide with the mesh-wide ones."""

_PART_OF = "app.kubernetes.io/part-of"
_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")


def deployment_name(mesh: str, block: str) -> str:
    """The Deployment (and Service, ServiceAccount...) of ``block`` in ``mesh``."""
    return f"{mesh}-{block}"


def gossip_port(spec: MeshSpec) -> int:
    """The fixed gossip port of every pod (one DNS seed name means one port for all)."""
    return spec.discovery.port or DEFAULT_GOSSIP_PORT


@dataclass(frozen=True, slots=True)
class Names:
    """Object names and labels of one mesh rendered into one namespace."""

    mesh: str
    namespace: str

    @classmethod
    def checked(cls, spec: MeshSpec, namespace: str | None) -> Names:
        """Names for ``spec``; a RenderError names the block whose names cannot work."""
        names = cls(spec.mesh, namespace or spec.mesh)
        if not _is_label(names.namespace):
            raise RenderError(
                f"namespace {names.namespace!r}: expected a DNS label "
                "(lower-case letters, digits and '-', at most 63)"
            )
        for own in (names.gossip_service, names.ca):
            if not _is_label(own):
                raise RenderError(
                    f"mesh {spec.mesh!r}: object name {own!r} is longer than 63 characters; "
                    "shorten the mesh name"
                )
        for block in spec.blocks:
            if block in RESERVED_BLOCKS:
                raise RenderError(
                    f"block {block!r}: the name is reserved for the mesh's own objects "
                    f"({', '.join(sorted(RESERVED_BLOCKS))}); rename the block"
                )
            if not _is_label(names.block(block)):
                raise RenderError(
                    f"block {block!r}: object name {names.block(block)!r} is no DNS label "
                    "(at most 63 characters, mesh name + '-' + block name, not ending "
                    "in '-'); shorten or rename"
                )
        return names

    def block(self, block: str) -> str:
        return deployment_name(self.mesh, block)

    @property
    def spec_config(self) -> str:
        return f"{self.mesh}-spec"

    @property
    def gossip_service(self) -> str:
        return f"{self.mesh}-gossip"

    @property
    def gossip_key(self) -> str:
        return f"{self.mesh}-gossip-key"

    @property
    def gossip_dns(self) -> str:
        """The headless Service's name as pods resolve it (cluster-domain agnostic)."""
        return f"{self.gossip_service}.{self.namespace}.svc"

    @property
    def policy_config(self) -> str:
        """The ConfigMap of the policy public key and run id (public, so rendered)."""
        return f"{self.mesh}-policy"

    def gateway_secret(self, block: str, kind: str) -> str:
        """The Secret of a gateway's files the operator creates (``kind``: tls, egress)."""
        return f"{self.block(block)}-{kind}"

    @property
    def ca(self) -> str:
        return f"{self.mesh}-ca"

    @property
    def ca_root(self) -> str:
        return f"{self.mesh}-ca-root"

    @property
    def join_tokens(self) -> str:
        return f"{self.mesh}-join-tokens"

    @property
    def ca_url(self) -> str:
        return f"https://{self.ca}.{self.namespace}.svc:{CA_PORT}"

    def selector(self, component: str, block: str | None = None) -> dict[str, str]:
        """The labels that select the pods of ``block`` (or of a mesh component)."""
        labels = {"eblocks.io/mesh": self.mesh, "app.kubernetes.io/component": component}
        if block is not None:
            labels["eblocks.io/block"] = block
        return labels

    def labels(self, component: str, block: str | None = None) -> dict[str, str]:
        """Every label of an object: the selector plus the recommended app labels."""
        return {
            **self.selector(component, block),
            "app.kubernetes.io/name": block or component,
            "app.kubernetes.io/managed-by": "eblocks",
            _PART_OF: self.mesh,
        }


def _is_label(text: str) -> bool:
    return _LABEL.fullmatch(text) is not None
