"""The identity bootstrap on Kubernetes: a CA role issues SVIDs against join tokens.

The mesh root key never enters a block's pod. The operator's CA folder
(`eblocks ca init`, `eblocks ca token`) becomes one Secret, ``<mesh>-ca-root``,
that only the CA pod mounts; an init container copies it into the pod's
memory-backed state dir, where `eblocks ca serve` runs (the token records
there change as tokens are used). Each block's pod gets only its own block's
join token (key ``<block>`` of the Secret ``<mesh>-join-tokens``) in an init
container that runs `eblocks ca join`: the key pair is made in the pod, the
SVID written to ``<state>/identity/<pod>``, where the instance loads it. A
native sidecar renews it with the current SVID (mTLS) well before it expires::

    init "join":  eblocks ca join --ca-url https://<mesh>-ca.<ns>.svc:8443 --token $TOKEN
                  --out /var/lib/eblocks/identity/$(POD_NAME)  --CSR-->  CA pod --SVID-->
    "renew":      every svid_ttl/6: eblocks ca join --renew --out (same folder)
    "block":      python -m eblocks.runtime.instance ... (mTLS with that SVID)

A stolen token yields only that block's identity. The Secrets are made by the
operator (docs/kubernetes.md), never rendered: no key material is in the output.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from eblocks.deploy.names import CA_PORT, SPEC_DIR, SPEC_FILE, STATE_DIR, Names
from eblocks.deploy.pods import container_security, field_env, pod_security
from eblocks.security.modes import uses_mtls
from eblocks.spec.models import MeshSpec

__all__ = [
    "CA_SECRET_DIR",
    "block_init_containers",
    "ca_objects",
    "identity_dir",
    "needs_identity",
]

CA_SECRET_DIR = "/var/run/eblocks/ca-secret"
"""Where the CA pod mounts ``<mesh>-ca-root`` (read-only; copied to the state dir)."""


def needs_identity(spec: MeshSpec) -> bool:
    """Whether any block speaks TLS (the same rule as `eblocks.security.Auth.for_holder`)."""
    return uses_mtls(spec)


def identity_dir() -> str:
    """Where the instance looks for its SVID: ``<state>/identity/<instance>``."""
    return f"{STATE_DIR}/identity/$(POD_NAME)"


def block_init_containers(
    spec: MeshSpec, names: Names, block: str, image: str
) -> list[dict[str, Any]]:
    """``join`` (once, before the block starts) and ``renew`` (a native sidecar)."""
    env = [
        field_env("POD_NAME", "metadata.name"),
        {"name": "EBLOCKS_CA_URL", "value": names.ca_url},
        {
            "name": "EBLOCKS_JOIN_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": names.join_tokens, "key": block}},
        },
    ]
    state = [{"name": "state", "mountPath": STATE_DIR}]
    common = {
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": container_security(),
        "volumeMounts": state,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    }
    period = max(30, math.floor(spec.security.svid_ttl / 6))
    renew = (
        f'while sleep {period}; do eblocks ca join --ca-url "$EBLOCKS_CA_URL" --renew '
        f'--out "{STATE_DIR}/identity/$POD_NAME" || echo "renewal failed; next try in {period}s"; '
        "done"
    )
    return [
        {
            "name": "join",
            "command": ["eblocks", "ca", "join"],
            "args": ["--ca-url", "$(EBLOCKS_CA_URL)", "--out", identity_dir()],
            "env": env,
            **common,
        },
        {
            "name": "renew",
            "restartPolicy": "Always",  # a native sidecar: runs beside the block, ends with it
            "command": ["sh", "-c", renew],
            "env": env[:2],
            **common,
        },
    ]


def ca_objects(
    spec: MeshSpec,
    names: Names,
    image: str,
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
        _ca_deployment(spec, names, image, meta),
    ]
    if network_policy != "none":
        objects.append(_ca_policy(names, meta))
    return objects


def _ca_deployment(
    spec: MeshSpec, names: Names, image: str, meta: dict[str, Any]
) -> dict[str, Any]:
    tcp = {"tcpSocket": {"port": "https"}}
    folder = f"{STATE_DIR}/{spec.mesh}/ca"  # `eblocks ca serve --state-dir` looks there
    copy = f"mkdir -p {folder} && cp -L {CA_SECRET_DIR}/* {folder}/ && chmod 600 {folder}/*"
    mounts = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
    ]
    passphrase = {
        "name": "EBLOCKS_CA_PASSPHRASE",
        "valueFrom": {
            "secretKeyRef": {"name": names.ca_root, "key": "passphrase", "optional": True}
        },
    }
    container = {
        "name": "ca",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["eblocks", "ca", "serve"],
        "args": [
            SPEC_FILE,
            "--state-dir",
            STATE_DIR,
            "--host",
            "$(POD_IP)",
            "--port",
            str(CA_PORT),
        ],
        "env": [field_env("POD_IP", "status.podIP"), passphrase],
        "ports": [{"name": "https", "containerPort": CA_PORT, "protocol": "TCP"}],
        "livenessProbe": {**tcp, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**tcp, "periodSeconds": 5, "failureThreshold": 2},
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    unpack = {
        "name": "ca-files",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", copy],
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "ca-secret", "mountPath": CA_SECRET_DIR, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
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
            # One issuer at a time: the old pod is gone before the new one reads the key.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": names.labels("ca")},
                "spec": {
                    "serviceAccountName": names.ca,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "initContainers": [unpack],
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "ca-secret",
                            "secret": {"secretName": names.ca_root, "defaultMode": 0o440},
                        },
                        {"name": "spec", "configMap": {"name": names.spec_config}},
                        # In memory: the copied root key never touches the node's disk.
                        {"name": "state", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
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
