"""The pod of an ``external`` block: the user's program next to `eblocks proxy`.

Locally `eblocks up` runs ``eblocks proxy ... -- command`` (one process owns
the other). In a pod they are two containers sharing the loopback::

    initContainers: [join (SVID)], proxy (native sidecar: restartPolicy Always)
    containers:     app  (the block's image running ``external.command``)

The proxy is a native sidecar (Kubernetes >= 1.29), so it starts before the
app and is stopped after it: the app's outbound ports are served from its
first second, and a pod whose app finished is not kept alive by its proxy.
The proxy holds the pod's mesh ports (``http``, ``admin``) and its probes:
``/readyz`` answers only once the app's port accepts. It has no startup
probe (the app would wait for it while it waits for the app); its liveness
probe starts after the spec's ``ready_timeout`` instead.
"""

from __future__ import annotations

import math
from typing import Any

from eblocks.deploy.pods import ADMIN_ANY, container_security, instance_args
from eblocks.deploy.policy import PolicyTrust
from eblocks.sidecar.options import spec_upstreams
from eblocks.spec.models import ExternalSpec, MeshSpec

__all__ = ["app_container", "app_env", "proxy_args", "proxy_container"]

Manifest = dict[str, Any]


def _external(spec: MeshSpec, block: str) -> ExternalSpec:
    external = spec.blocks[block].external
    if external is None:
        raise ValueError(f"block {block!r} is not external")
    return external


def proxy_args(spec: MeshSpec, block: str, *, policy: bool = False) -> list[str]:
    """The arguments of ``python -m eblocks proxy`` in the pod ($(VAR) from env).

    ``policy``: the pod mounts the policy ConfigMap (`PolicyTrust`), so the proxy,
    like any instance, takes the bundles `eblocks apply` signs.
    """
    external = _external(spec, block)
    args = ["proxy", *instance_args(block, "--mesh-state"), "--app-port", str(external.port)]
    args += ADMIN_ANY  # the admin port on the pod's loopback too: kubectl port-forward
    if policy:
        args += PolicyTrust.args()
    if external.protocol == "tcp":
        args.append("--tcp")
    for up in spec_upstreams(spec, block):
        args += ["--upstream", str(up)]
    if external.ready_timeout is not None:
        args += ["--ready-timeout", f"{external.ready_timeout:g}"]
    return args


def proxy_container(
    spec: MeshSpec, block: str, base: Manifest, *, policy: bool = False
) -> Manifest:
    """``base`` (the block container a Python block would get) turned into the proxy."""
    ready_timeout = _external(spec, block).ready_timeout or spec.defaults.ready_timeout
    proxy = {k: v for k, v in base.items() if k != "startupProbe"}
    proxy["name"] = "proxy"
    proxy["command"] = ["python", "-m", "eblocks"]
    proxy["args"] = proxy_args(spec, block, policy=policy)
    proxy["restartPolicy"] = "Always"  # a native sidecar
    proxy["livenessProbe"] = {
        **base["livenessProbe"],
        "initialDelaySeconds": math.ceil(ready_timeout),
    }
    return proxy


def app_env(spec: MeshSpec, block: str) -> list[dict[str, str]]:
    """What the app is told: its port and where its upstreams answer, then the block's env."""
    external = _external(spec, block)
    env = [{"name": "EBLOCKS_APP_PORT", "value": str(external.port)}]
    for up in spec_upstreams(spec, block):
        name = f"EBLOCKS_UPSTREAM_{up.target.upper().replace('-', '_')}"
        env.append({"name": name, "value": f"127.0.0.1:{up.port}"})
    own = spec.blocks[block].env
    env += [{"name": key, "value": own[key]} for key in sorted(own)]
    return env


def app_container(spec: MeshSpec, block: str, image: str, resources: Manifest) -> Manifest:
    """The user's program, in the block's image, reached by the proxy on loopback."""
    external = _external(spec, block)
    return {
        "name": "app",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(external.command),
        "env": app_env(spec, block),
        "resources": resources,
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
