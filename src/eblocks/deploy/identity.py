"""The identity bootstrap on Kubernetes: a CA role issues SVIDs against join tokens.

The mesh root key never enters a block's pod. It lives in one Secret
(``<mesh>-ca-root``) that only the CA pod mounts; the CA serves CSRs on
``<mesh>-ca:8443``. Each block's pod mounts just its own block's join token
(one key of the Secret ``<mesh>-join-tokens``) and the public trust bundle
(ConfigMap ``<mesh>-trust-bundle``), makes its key pair in memory, and asks
the CA for an SVID for its block, presenting the token::

    block pod --CSR + join token(block)--> CA pod --SVID (24 h)--> block pod
                 verified against the trust bundle    root key: Secret, CA pod only

A stolen token yields only that block's identity. The Secrets and the bundle
are made by the operator (docs/kubernetes.md), never rendered, so no key
material is written to the output. Block pods mount them as optional, so a
mesh without identity yet still starts.
"""

from __future__ import annotations

from typing import Any, Literal

from eblocks.deploy.names import CA_PORT, JOIN_DIR, TRUST_DIR, Names
from eblocks.deploy.pods import container_security, field_env, pod_security
from eblocks.spec.models import MeshSpec

__all__ = [
    "CA_COMMAND",
    "CA_ROOT_DIR",
    "JOIN_TOKENS_DIR",
    "block_mounts",
    "block_volumes",
    "ca_objects",
]

CA_COMMAND = ("eblocks", "ca", "serve")
"""What the CA pod runs: the CA role of issue 6 (not part of this renderer)."""
CA_ROOT_DIR = "/var/run/eblocks/ca-root"
JOIN_TOKENS_DIR = "/var/run/eblocks/join-tokens"


def block_mounts() -> list[dict[str, Any]]:
    return [
        {"name": "join-token", "mountPath": JOIN_DIR, "readOnly": True},
        {"name": "trust-bundle", "mountPath": TRUST_DIR, "readOnly": True},
    ]


def block_volumes(names: Names, block: str) -> list[dict[str, Any]]:
    """This block's join token only (``<JOIN_DIR>/token``) and the public trust bundle."""
    return [
        {
            "name": "join-token",
            "secret": {
                "secretName": names.join_tokens,
                "items": [{"key": block, "path": "token"}],
                "defaultMode": 0o400,
                "optional": True,
            },
        },
        {
            "name": "trust-bundle",
            "configMap": {"name": names.trust_bundle, "optional": True},
        },
    ]


def ca_objects(
    spec: MeshSpec,
    names: Names,
    image_prefix: str,
    tag: str,
    network_policy: Literal["edges", "mesh", "none"],
) -> list[dict[str, Any]]:
    """ServiceAccount, Service, Deployment and (unless disabled) NetworkPolicy of the CA."""
    meta = {"name": names.ca, "namespace": names.namespace, "labels": names.labels("ca")}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta,
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "selector": names.selector("ca"),
                "ports": [
                    {"name": "https", "port": CA_PORT, "targetPort": "https", "protocol": "TCP"}
                ],
            },
        },
        _ca_deployment(spec, names, f"{image_prefix}{names.ca}:{tag}", meta),
    ]
    if network_policy != "none":
        objects.append(_ca_policy(names, meta))
    return objects


def _ca_deployment(
    spec: MeshSpec, names: Names, image: str, meta: dict[str, Any]
) -> dict[str, Any]:
    tcp = {"tcpSocket": {"port": "https"}}
    container = {
        "name": "ca",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(CA_COMMAND),
        "args": [
            "--mesh",
            spec.mesh,
            "--root-dir",
            CA_ROOT_DIR,
            "--join-tokens",
            JOIN_TOKENS_DIR,
            "--host",
            "$(POD_IP)",
            "--port",
            str(CA_PORT),
        ],
        "env": [field_env("POD_NAME", "metadata.name"), field_env("POD_IP", "status.podIP")],
        "ports": [{"name": "https", "containerPort": CA_PORT, "protocol": "TCP"}],
        "livenessProbe": {**tcp, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**tcp, "periodSeconds": 5, "failureThreshold": 2},
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "ca-root", "mountPath": CA_ROOT_DIR, "readOnly": True},
            {"name": "join-tokens", "mountPath": JOIN_TOKENS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": names.selector("ca")},
            # One issuer at a time: the old pod is gone before the new one mounts the key.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": names.labels("ca")},
                "spec": {
                    "serviceAccountName": names.ca,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "ca-root",
                            "secret": {"secretName": names.ca_root, "defaultMode": 0o400},
                        },
                        {
                            "name": "join-tokens",
                            "secret": {"secretName": names.join_tokens, "defaultMode": 0o400},
                        },
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                    ],
                },
            },
        },
    }


def _ca_policy(names: Names, meta: dict[str, Any]) -> dict[str, Any]:
    """Only the mesh's block pods reach the CA."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": names.selector("ca")},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": names.selector("block")}}],
                    "ports": [{"port": CA_PORT, "protocol": "TCP"}],
                }
            ],
        },
    }
