"""Render a mesh spec into one Dockerfile per block and a compose file (`--target docker`).

Nothing is built here. Each image is the spec's folder (its handler modules)
on ``python:3.12-slim`` with Eblocks installed from a wheel in that folder's
``wheels/``; its command is the same instance entry point the pods and the
local supervisor run. In compose every container carries the network alias
``<mesh>-gossip``, which Docker's DNS resolves to all of them: the gossip
seeds, as the headless Service is on Kubernetes::

    <out>/mesh.yaml              the spec as the containers run it (gossip via the alias)
    <out>/<block>.Dockerfile     one image per block: <prefix><mesh>-<block>:<tag>
    <out>/compose.yaml           services, replicas, health checks, the spec, the key
    <out>/policy/signing.pub     the policy public key and run id (`eblocks.deploy.policy`),
    <out>/policy/run             bind-mounted read-only where the instances read them

A gateway's certificate and key files are bind-mounted read-only from the
spec's folder at the paths the containers' spec names (`gateway_files`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eblocks import __version__
from eblocks.deploy.gateway_files import gateway_files
from eblocks.deploy.kubernetes import cluster_spec, grace_seconds, instance_args
from eblocks.deploy.names import (
    ADMIN_PORT,
    HTTP_PORT,
    POLICY_DIR,
    RUN_AS,
    SPEC_FILE,
    STATE_DIR,
    Names,
)
from eblocks.deploy.names import gossip_port as _gossip_port
from eblocks.deploy.output import dump_documents, dump_spec, header
from eblocks.deploy.pods import ADMIN_ANY
from eblocks.deploy.policy import PolicyTrust
from eblocks.errors import RenderError
from eblocks.security.modes import admin_tls
from eblocks.spec.models import MeshSpec

__all__ = ["PYTHON_IMAGE", "DockerOptions", "docker_files"]

PYTHON_IMAGE = "python:3.12-slim"

# The container's own address: what it binds and publishes to the gossip.
_ADDRESS = "$(hostname -i | cut -d' ' -f1)"
_PROBE = (  # like kubelet's HTTPS probes: the server's certificate is not checked
    "import socket, ssl, urllib.request; "
    "urllib.request.urlopen('{scheme}://%s:{port}{path}' % "
    "socket.gethostbyname(socket.gethostname()), timeout=2, "
    "context=ssl._create_unverified_context())"
)


@dataclass(frozen=True, slots=True)
class DockerOptions:
    """What `eblocks render --target docker` takes besides the spec."""

    spec_dir: Path
    """The build context: the folder holding the spec and its handler modules."""
    out: Path
    """Where the files go (paths in compose.yaml are relative to it)."""
    image_prefix: str = ""
    tag: str = "latest"
    source: str = "mesh.yaml"
    policy: PolicyTrust | None = None
    """The policy public key and run id (`KubeOptions.policy`); none: bundles are refused."""


def docker_files(spec: MeshSpec, options: DockerOptions) -> dict[str, str]:
    """Every file of the docker target, by name relative to ``options.out``."""
    names = Names.checked(spec, None)
    external = sorted(b for b, block in spec.blocks.items() if block.external is not None)
    if external:  # its image is the user's program, not a Python block's: Kubernetes has the pair
        raise RenderError(
            f"block {external[0]!r} is external: the docker target does not render external "
            "blocks (their program and the proxy need a pod); use --target kubernetes, or "
            "`eblocks up` on one machine"
        )
    context = _relative(options.spec_dir, options.out)
    files = {
        "mesh.yaml": header(options.source, f"the spec of mesh {spec.mesh!r} in compose")
        + dump_spec(cluster_spec(spec, names.gossip_service)),
    }
    for block in sorted(spec.blocks):
        files[f"{block}.Dockerfile"] = dockerfile(
            spec, block, options.source, policy=options.policy is not None
        )
    if options.policy is not None:  # public: plain files, bind-mounted read-only
        files["policy/signing.pub"] = options.policy.public_key
        files["policy/run"] = options.policy.run + "\n"
    compose = _compose(spec, names, options, context)
    files["compose.yaml"] = header(options.source, f"compose file of mesh {spec.mesh!r}") + (
        dump_documents([compose]).removeprefix("---\n")
    )
    return dict(sorted(files.items()))


def image(prefix: str, names: Names, block: str, tag: str) -> str:
    return f"{prefix}{names.block(block)}:{tag}"


def dockerfile(spec: MeshSpec, block: str, source: str, *, policy: bool = False) -> str:
    """The Dockerfile of one block's image (build context: the spec's folder).

    ``policy``: the instance reads the policy public key and run id at `POLICY_DIR`.
    """
    args = instance_args(block) + ADMIN_ANY + (PolicyTrust.args() if policy else [])
    args[args.index("$(POD_NAME)")] = '"$(hostname)"'
    args[args.index("$(POD_IP)")] = f'"{_ADDRESS}"'
    args[args.index("*")] = "'*'"  # a shell runs the line: no glob
    run = "exec python -m eblocks.runtime.instance " + " ".join(args)
    scheme = "https" if admin_tls(spec, block) else "http"  # probes need no certificate
    probe = _PROBE.format(scheme=scheme, port=ADMIN_PORT, path="/readyz")
    lines = [
        header(source, f"image of block {block!r} of mesh {spec.mesh!r}").rstrip("\n"),
        "# Build from the spec's folder, with the eblocks wheel in its wheels/ folder:",
        f"#   docker build -f <out>/{block}.Dockerfile -t {spec.mesh}-{block} <spec folder>",
        f"FROM {PYTHON_IMAGE}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app",
        "WORKDIR /app",
        "COPY . /app",
        "RUN pip install --no-cache-dir --find-links /app/wheels "
        f'"eblocks[fast]=={__version__}" \\',
        " && if [ -f requirements.txt ]; then \\",
        "      pip install --no-cache-dir -r requirements.txt; fi \\",
        f" && groupadd --gid {RUN_AS} eblocks \\",
        f" && useradd --uid {RUN_AS} --gid {RUN_AS} --no-create-home "
        "--shell /usr/sbin/nologin eblocks \\",
        f" && mkdir -p {STATE_DIR} /etc/eblocks && chown {RUN_AS}:{RUN_AS} {STATE_DIR} \\",
        f" && ln -s /run/secrets/gossip_key {STATE_DIR}/gossip.key",
        f"USER {RUN_AS}:{RUN_AS}",
        f"ENV EBLOCKS_MESH={spec.mesh} EBLOCKS_BLOCK={block}",
        f"EXPOSE {HTTP_PORT}/tcp {ADMIN_PORT}/tcp {_gossip_port(spec)}/udp",
        "STOPSIGNAL SIGTERM",
        "HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\",
        f"  CMD {json.dumps(['python', '-c', probe])}",
        f"CMD {json.dumps(['sh', '-c', run])}",
    ]
    return "\n".join(lines) + "\n"


def _compose(spec: MeshSpec, names: Names, options: DockerOptions, context: str) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for block in sorted(spec.blocks):
        settings = spec.settings(block)
        service: dict[str, Any] = {
            "image": image(options.image_prefix, names, block, options.tag),
            "build": {
                "context": context,
                "dockerfile": _relative(options.out / f"{block}.Dockerfile", options.spec_dir),
            },
            "configs": [{"source": "spec", "target": SPEC_FILE}],
            "secrets": [{"source": "gossip_key", "target": "gossip_key"}],
            "deploy": {"replicas": settings.replicas},
            "stop_grace_period": f"{grace_seconds(spec, block)}s",
            "tmpfs": ["/tmp"],
            "networks": {"mesh": {"aliases": [names.gossip_service]}},
            "restart": "unless-stopped",
        }
        volumes = _mounts(spec, block, options)
        if volumes:
            service["volumes"] = volumes
        if spec.blocks[block].env:
            service["environment"] = dict(sorted(spec.blocks[block].env.items()))
        services[block] = service
    return {
        "name": spec.mesh,
        "services": services,
        "configs": {"spec": {"file": "./mesh.yaml"}},
        # The operator makes it: `openssl rand -hex 32 > gossip.key` (docs/kubernetes.md).
        "secrets": {"gossip_key": {"file": "./gossip.key"}},
        "networks": {"mesh": {}},
    }


def _mounts(spec: MeshSpec, block: str, options: DockerOptions) -> list[dict[str, Any]]:
    """Read-only binds: the policy folder, and a gateway's files where its spec names them."""
    binds = []
    if options.policy is not None:
        binds.append(_bind("./policy", POLICY_DIR))
    for files in gateway_files(spec, block):
        for key, source in files.files:
            binds.append(_bind(_relative(options.spec_dir / source, options.out), files.path(key)))
    return binds


def _bind(source: str, target: str) -> dict[str, Any]:
    source = source if source.startswith((".", "/")) else f"./{source}"  # a path, not a volume
    return {"type": "bind", "source": source, "target": target, "read_only": True}


def _relative(target: Path, start: Path) -> str:
    """``target`` relative to ``start`` (both made absolute), with '/' separators."""
    try:
        rel = os.path.relpath(target.absolute(), start.absolute())
    except ValueError as exc:  # different drives on Windows
        raise RenderError(f"cannot reach {target} from {start}: {exc}") from exc
    return Path(rel).as_posix()
