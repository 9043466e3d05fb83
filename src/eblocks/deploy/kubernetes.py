"""Render a mesh spec into Kubernetes manifests (`eblocks render --target kubernetes`).

One file per block plus the mesh-wide files, each a list of plain dicts that
`output` dumps with sorted keys; nothing depends on the clock, the machine or
dict order, so rendering twice gives the same bytes::

    00-namespace.yaml        Namespace (Pod Security "restricted"), when it is the mesh's own
    01-mesh.yaml             ConfigMap <mesh>-spec (the spec as the pods run it),
                             [ConfigMap <mesh>-policy (the policy public key, `policy`)],
                             headless Service <mesh>-gossip (the gossip seeds)
    02-identity.yaml         the CA role (`identity`), unless disabled
    10-block-<block>.yaml    ServiceAccount, [Role, RoleBinding], Service,
                             Deployment, PodDisruptionBudget, NetworkPolicy

Each pod runs the one instance entry point the local supervisor also uses,
``python -m eblocks.runtime.instance`` (docs/kubernetes.md). The spec it reads
is the user's with ``discovery`` switched to gossip seeded by the headless
Service (`cluster_spec`) and gateways' files at their Secrets' mounts
(`gateway_files`); the gossip key and a gateway's certificate come from
Secrets the operator creates, so no private key is ever written into the
rendered files.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eblocks.deploy import gateway_files, identity, netpol, sidecar
from eblocks.deploy.edges import Edge, callers, pattern_edges
from eblocks.deploy.names import (
    ADMIN_PORT,
    HTTP_PORT,
    SPEC_DIR,
    STATE_DIR,
    Names,
    gossip_port,
)
from eblocks.deploy.output import dump_documents, dump_spec, header
from eblocks.deploy.pods import (
    ADMIN_ANY,
    container_security,
    field_env,
    instance_args,
    pod_security,
)
from eblocks.deploy.policy import PolicyTrust
from eblocks.runtime.scaling import initial_count
from eblocks.security.modes import admin_tls
from eblocks.spec.models import ManagerWorkerSpec, MeshSpec, Resources

__all__ = [
    "DEFAULT_RESOURCES",
    "DRAIN_MARGIN",
    "KUBERNETES_VERSION",
    "KubeOptions",
    "Manifest",
    "cluster_spec",
    "downward_env",
    "grace_seconds",
    "image",
    "instance_args",
    "kubernetes_files",
    "proxy_image",
    "render_kubernetes",
    "resources",
    "scaler_env",
]

Manifest = dict[str, Any]

KUBERNETES_VERSION = "1.34"
"""The Kubernetes version whose official schemas the tests validate every manifest against."""

DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
"""Per container when the spec sets none; no CPU limit by default (throttling hurts tails)."""

DRAIN_MARGIN = 5
"""Seconds of grace past gossip LEFT + drain, for the process to close its sockets."""


@dataclass(frozen=True, slots=True)
class KubeOptions:
    """What `eblocks render --target kubernetes` takes besides the spec."""

    namespace: str | None = None
    """Target namespace; the mesh's name when unset."""
    image_prefix: str = ""
    """Prepended to ``<mesh>-<block>:<tag>`` (e.g. ``registry.example.com/team/``)."""
    tag: str = "latest"
    identity: bool = True
    """Render the CA role and mount each block's join token (docs/kubernetes.md)."""
    network_policy: Literal["edges", "mesh", "none"] = "edges"
    """``edges``: callers from the patterns only; ``mesh``: any block; ``none``: no policies."""
    source: str = "mesh.yaml"
    """The spec's file name, quoted in each file's header (never a full path)."""
    proxy_image: str | None = None
    """Eblocks' own image, for the proxy of ``external`` blocks (``<prefix>eblocks:<tag>``)."""
    policy: PolicyTrust | None = None
    """The policy public key and run id the instances verify `eblocks apply`'s bundles with
    (ConfigMap ``<mesh>-policy``); without it they refuse every bundle (``no_key``)."""


def render_kubernetes(
    spec: MeshSpec, options: KubeOptions = KubeOptions(), edges: Iterable[Edge] | None = None
) -> dict[str, list[Manifest]]:
    """Every manifest of the mesh, by output file name (sorted).

    ``edges`` are the allowed calls the NetworkPolicies admit; by default the
    patterns' (`pattern_edges`). Other sources of allowed calls are merged in
    by passing the union.
    """
    names = Names.checked(spec, options.namespace)
    found = pattern_edges(spec) if edges is None else tuple(sorted(set(edges)))
    allowed = callers(spec, found)
    config = _spec_config(spec, names)
    digest = hashlib.sha256(config["data"]["mesh.yaml"].encode()).hexdigest()
    mesh_files = [config, _gossip_service(spec, names)]
    if options.policy is not None:
        mesh_files.insert(1, options.policy.config_map(names))
        digest = hashlib.sha256(f"{digest}\n{options.policy.digest}".encode()).hexdigest()
    files: dict[str, list[Manifest]] = {"01-mesh.yaml": mesh_files}
    if names.namespace == spec.mesh:  # the mesh's own; never relabel a namespace given to us
        files["00-namespace.yaml"] = [_namespace(names)]
    if options.identity and identity.needs_identity(spec):
        # Any Python block's image holds eblocks; the first one's serves the CA role too.
        python = [b for b in spec.blocks if spec.blocks[b].external is None]
        ca_image = image(names, min(python), options) if python else proxy_image(options)
        files["02-identity.yaml"] = identity.ca_objects(
            spec, names, ca_image, options.network_policy
        )
    workers = _workers_by_manager(spec)
    for block in sorted(spec.blocks):
        objects = [_service_account(names, block, block in workers)]
        if block in workers:
            objects += _scale_rbac(names, block, workers[block])
        objects += [
            _service(names, block),
            _deployment(spec, names, block, options, digest, manager=block in workers),
            _disruption_budget(names, block),
        ]
        if options.network_policy != "none":
            mesh_wide = options.network_policy == "mesh"
            objects.append(
                netpol.block_policy(spec, names, block, allowed[block], found, mesh_wide=mesh_wide)
            )
        files[f"10-block-{block}.yaml"] = objects
    return dict(sorted(files.items()))


def cluster_spec(spec: MeshSpec, seeds_dns: str) -> dict[str, Any]:
    """The spec as the pods run it: the user's, with discovery by gossip through ``seeds_dns``.

    Static seeds, DNS names and keys of the user's spec belong to another
    environment and are dropped; the key arrives from a Secret. Tunables and
    ``leave_drain`` are kept. A gateway's certificate and key files are named
    where their Secrets are mounted (`gateway_files.rewrite`).
    """
    data = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    kept = spec.discovery.model_dump(
        mode="json",
        exclude_defaults=True,
        include={"leave_drain", "tunables"},
    )
    port = gossip_port(spec)
    data["discovery"] = {"mode": "gossip", "dns": seeds_dns, "dns_port": port, "port": port, **kept}
    gateway_files.rewrite(data, spec)
    return data


def _workers_by_manager(spec: MeshSpec) -> dict[str, tuple[str, ...]]:
    """Manager block -> the worker blocks whose Deployments it scales."""
    found: dict[str, set[str]] = {}
    for pattern in spec.patterns.values():
        if isinstance(pattern, ManagerWorkerSpec):
            pool = pattern.manager_worker
            if pool.worker in spec.blocks:
                found.setdefault(pool.manager, set()).add(pool.worker)
    return {manager: tuple(sorted(workers)) for manager, workers in found.items()}


def _meta(names: Names, name: str, component: str, block: str | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": names.namespace, "labels": names.labels(component, block)}


def _namespace(names: Names) -> Manifest:
    labels = {
        "app.kubernetes.io/managed-by": "eblocks",
        "app.kubernetes.io/part-of": names.mesh,
        # Every pod rendered here meets the "restricted" Pod Security Standard.
        "pod-security.kubernetes.io/enforce": "restricted",
    }
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": names.namespace, "labels": labels},
    }


def _spec_config(spec: MeshSpec, names: Names) -> Manifest:
    text = dump_spec(cluster_spec(spec, names.gossip_dns))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names, names.spec_config, "config"),
        "data": {"mesh.yaml": text},
    }


def _gossip_service(spec: MeshSpec, names: Names) -> Manifest:
    """Headless: its name resolves to every block pod, ready or not, so the first pods find
    each other before any is ready."""
    port = gossip_port(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(names, names.gossip_service, "gossip"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": names.selector("block"),
            "ports": [{"name": "gossip", "port": port, "targetPort": port, "protocol": "UDP"}],
        },
    }


def _service_account(names: Names, block: str, manager: bool) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(names, names.block(block), "block", block),
        # Only managers talk to the API server (to scale their workers).
        "automountServiceAccountToken": manager,
    }


def _scale_rbac(names: Names, manager: str, workers: tuple[str, ...]) -> list[Manifest]:
    """Let the manager read and patch the ``scale`` of its workers' Deployments, nothing else."""
    name = f"{names.block(manager)}-scaler"
    deployments = [names.block(worker) for worker in workers]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(names, name, "block", manager),
        "rules": [
            {
                "apiGroups": ["apps"],
                "resources": ["deployments/scale"],
                "resourceNames": deployments,
                "verbs": ["get", "patch", "update"],
            },
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "resourceNames": deployments,
                "verbs": ["get"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(names, name, "block", manager),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {"kind": "ServiceAccount", "name": names.block(manager), "namespace": names.namespace}
        ],
    }
    return [role, binding]


def _service(names: Names, block: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(names, names.block(block), "block", block),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector("block", block),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
            ],
        },
    }


def _disruption_budget(names: Names, block: str) -> Manifest:
    """One pod of a block down at a time during voluntary disruptions (node drains).

    ``maxUnavailable`` rather than ``minAvailable``: a single-replica block must
    not block a node drain forever.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(names, names.block(block), "block", block),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": names.selector("block", block)}},
    }


def grace_seconds(spec: MeshSpec, block: str) -> int:
    """SIGTERM -> gossip LEFT (leave_drain) -> drain; then a margin to close sockets."""
    drain = spec.settings(block).drain
    return math.ceil(spec.discovery.leave_drain + drain) + DRAIN_MARGIN


def resources(block_resources: Resources | None) -> dict[str, dict[str, str]]:
    """The spec's requests/limits over `DEFAULT_RESOURCES`, field by field."""
    merged = {kind: dict(amounts) for kind, amounts in DEFAULT_RESOURCES.items()}
    if block_resources is not None:
        for kind in ("requests", "limits"):
            own = getattr(block_resources, kind).model_dump(exclude_none=True)
            merged.setdefault(kind, {}).update(own)
    return {kind: amounts for kind, amounts in merged.items() if amounts}


def _deployment(
    spec: MeshSpec, names: Names, block: str, options: KubeOptions, digest: str, *, manager: bool
) -> Manifest:
    pod = {
        "metadata": {
            "labels": names.labels("block", block),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(ADMIN_PORT),
                "prometheus.io/path": "/metrics",
                # https: the scraper shows a client certificate of the mesh (kubernetes.md)
                "prometheus.io/scheme": _admin_scheme(spec, block).lower(),
                # Pods roll when the spec (or the policy key or run) changes, although the
                # ConfigMaps keep their names.
                "eblocks.io/spec-sha256": digest,
            },
        },
        "spec": {
            "serviceAccountName": names.block(block),
            "automountServiceAccountToken": manager,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": grace_seconds(spec, block),
            "securityContext": pod_security(),
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": names.selector("block", block)},
                }
            ],
            **_containers(spec, names, block, options, manager=manager),
            "volumes": _volumes(spec, names, block, options),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(names, names.block(block), "block", block),
        "spec": {
            "replicas": initial_count(spec, block),
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": names.selector("block", block)},
            # Never fewer ready pods than asked for while rolling.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": pod,
        },
    }


def downward_env(spec: MeshSpec, block: str) -> list[dict[str, Any]]:
    """The pod's identity from the downward API, then the mesh's variables, then the block's."""
    env = [
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        field_env("NODE_NAME", "spec.nodeName"),
        {"name": "EBLOCKS_MESH", "value": spec.mesh},
        {"name": "EBLOCKS_BLOCK", "value": block},
        {"name": "EBLOCKS_INSTANCE", "value": "$(POD_NAME)"},
    ]
    own = spec.blocks[block].env
    env += [{"name": key, "value": own[key]} for key in sorted(own)]
    return env


def image(names: Names, block: str, options: KubeOptions) -> str:
    return f"{options.image_prefix}{names.block(block)}:{options.tag}"


def proxy_image(options: KubeOptions) -> str:
    """The image of the sidecar proxy (an external block's own image holds only its program)."""
    return options.proxy_image or f"{options.image_prefix}eblocks:{options.tag}"


def _containers(
    spec: MeshSpec, names: Names, block: str, options: KubeOptions, *, manager: bool
) -> dict[str, list[Manifest]]:
    """The block container, or for an external block the app with the proxy as a sidecar."""
    external = spec.blocks[block].external is not None
    eblocks = proxy_image(options) if external else image(names, block, options)
    init: list[Manifest] = []
    if options.identity and identity.needs_identity(spec):  # SVID join and renewal
        init = identity.block_init_containers(spec, names, block, eblocks)
    main = _container(spec, names, block, options, manager=manager)
    if not external:
        return {"initContainers": init, "containers": [main]} if init else {"containers": [main]}
    base = {**main, "image": eblocks}  # its mounts: the policy ConfigMap's too
    proxy = sidecar.proxy_container(spec, block, base, policy=options.policy is not None)
    app = sidecar.app_container(spec, block, main["image"], main["resources"])
    return {"initContainers": [*init, proxy], "containers": [app]}


def scaler_env(names: Names) -> list[dict[str, Any]]:
    """A manager resizes its pools' Deployments (`eblocks.workload.scalers.make_scaler`)."""
    return [
        {"name": "EBLOCKS_SCALER", "value": "kubernetes"},
        {"name": "EBLOCKS_SCALE_DEPLOYMENT", "value": names.block("{pool}")},
    ]


def _container(
    spec: MeshSpec, names: Names, block: str, options: KubeOptions, *, manager: bool
) -> Manifest:
    port = gossip_port(spec)
    env = downward_env(spec, block)
    if manager:
        env += scaler_env(names)
    args = instance_args(block) + ADMIN_ANY
    mounts = [
        {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
        {
            "name": "gossip-key",
            "mountPath": f"{STATE_DIR}/gossip.key",
            "subPath": "gossip.key",
            "readOnly": True,
        },
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if options.policy is not None:
        mounts.append(options.policy.mount())
        args += options.policy.args()
    mounts += [files.mount() for files in gateway_files.gateway_files(spec, block)]
    admin_probe = {"port": "admin", "scheme": _admin_scheme(spec, block)}
    ready_timeout = spec.defaults.ready_timeout
    return {
        "name": "block",
        "image": image(names, block, options),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "eblocks.runtime.instance"],
        "args": args,
        "env": env,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
            {"name": "gossip", "containerPort": port, "protocol": "UDP"},
        ],
        "startupProbe": {
            "httpGet": {"path": "/healthz", **admin_probe},
            "periodSeconds": 2,
            "failureThreshold": max(1, math.ceil(ready_timeout / 2)),
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", **admin_probe},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", **admin_probe},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "resources": resources(spec.blocks[block].resources),
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }


def _admin_scheme(spec: MeshSpec, block: str) -> str:
    """``HTTPS`` when the block's admin port is TLS: probes need no certificate, data does."""
    return "HTTPS" if admin_tls(spec, block) else "HTTP"


def _volumes(spec: MeshSpec, names: Names, block: str, options: KubeOptions) -> list[Manifest]:
    volumes: list[Manifest] = [
        {"name": "spec", "configMap": {"name": names.spec_config}},
        {"name": "state", "emptyDir": {}},
        {
            "name": "gossip-key",
            # Owner root, group fsGroup: 0440 lets the non-root user read it.
            "secret": {"secretName": names.gossip_key, "defaultMode": 0o440},
        },
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    if options.policy is not None:
        volumes.append(options.policy.volume(names))
    volumes += [files.volume(names) for files in gateway_files.gateway_files(spec, block)]
    return volumes


def kubernetes_files(
    spec: MeshSpec, options: KubeOptions = KubeOptions(), edges: Iterable[Edge] | None = None
) -> dict[str, str]:
    """`render_kubernetes` as file texts, each with its header."""
    rendered = render_kubernetes(spec, options, edges)
    namespace = options.namespace or spec.mesh
    texts: dict[str, str] = {}
    for name, documents in rendered.items():
        what = (
            f"mesh {spec.mesh!r} in namespace {namespace!r}, "
            f"{', '.join(doc['kind'] for doc in documents)} (Kubernetes {KUBERNETES_VERSION})"
        )
        texts[name] = dump_documents(documents, header(options.source, what))
    return texts
