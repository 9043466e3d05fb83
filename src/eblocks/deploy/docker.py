"""Render a mesh spec into one Dockerfile per block and a compose file (`--target docker`).

Nothing is built here. Each image is the spec's folder (its handler modules)
on ``python:3.12-slim`` with Eblocks installed from a wheel in that folder's
``wheels/``; its command is the same instance entry point the pods and the
local supervisor run. In compose every container carries the network alias
``<mesh>-gossip``, which Docker's DNS resolves to all of them: the gossip
seeds, as the headless Service is on Kubernetes::

    <out>/mesh.yaml              the spec as the containers run it (gossip via the alias)
    <out>/<block>.Dockerfile     one image per block: <prefix><mesh>-<block>:<tag>
    <out>/<block>.Dockerfile.dockerignore  what its build never copies (`dockerignore`)
    <out>/compose.yaml           services, replicas, health checks, the spec, the key
    <out>/eblocks.proxy.Dockerfile  the sidecar proxy's image, when a block is external
    <out>/policy/signing.pub     the policy public key and run id (`eblocks.deploy.policy`),
    <out>/policy/run             bind-mounted read-only where the instances read them

An ``external`` block is rendered as its pod is on Kubernetes (`sidecar`):
per replica ``i``, a service ``<block>_<i>`` running `eblocks proxy` (the
block: mesh ports, gossip alias, health check) and a service
``<block>_<i>_app`` running the program in the block's own image, which
joins the proxy's network namespace (``network_mode: service:<block>_<i>``),
so the two share a loopback as containers of a pod do. Compose's
``replicas`` cannot pair containers, hence one pair of services per replica;
block names have no ``_``, so these names never clash with a block's.

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
from eblocks.deploy.sidecar import app_env, proxy_args
from eblocks.errors import RenderError
from eblocks.security.modes import admin_tls
from eblocks.spec.models import MeshSpec

__all__ = ["PROXY_DOCKERFILE", "PYTHON_IMAGE", "DockerOptions", "docker_files", "dockerignore"]

PYTHON_IMAGE = "python:3.12-slim"
PROXY_DOCKERFILE = "eblocks.proxy.Dockerfile"
"""The sidecar proxy's image (a block's is ``<block>.Dockerfile``: block names have no dot)."""

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
    proxy_image: str | None = None
    """Eblocks' image for external blocks' proxies; none: ``<prefix>eblocks:<tag>``, built
    from `PROXY_DOCKERFILE`."""
    state_root: Path | None = None
    """The folder of the meshes' state dirs (their CA and signing keys), kept out of images."""


def docker_files(spec: MeshSpec, options: DockerOptions) -> dict[str, str]:
    """Every file of the docker target, by name relative to ``options.out``."""
    names = Names.checked(spec, None)
    context = _relative(options.spec_dir, options.out)
    files = {
        "mesh.yaml": header(options.source, f"the spec of mesh {spec.mesh!r} in compose")
        + dump_spec(cluster_spec(spec, names.gossip_service)),
    }
    ignore = dockerignore(options)
    for block in sorted(spec.blocks):
        if spec.blocks[block].external is None:  # an external block's image is the user's
            files[f"{block}.Dockerfile"] = dockerfile(
                spec, block, options.source, policy=options.policy is not None
            )
            files[f"{block}.Dockerfile.dockerignore"] = ignore
    if _externals(spec) and options.proxy_image is None:
        files[PROXY_DOCKERFILE] = proxy_dockerfile(spec, options.source)
        files[f"{PROXY_DOCKERFILE}.dockerignore"] = ignore
    if options.policy is not None:  # public: plain files, bind-mounted read-only
        files["policy/signing.pub"] = options.policy.public_key
        files["policy/run"] = options.policy.run + "\n"
    compose = _compose(spec, names, options, context)
    files["compose.yaml"] = header(options.source, f"compose file of mesh {spec.mesh!r}") + (
        dump_documents([compose]).removeprefix("---\n")
    )
    return dict(sorted(files.items()))


_SECRETS = ("**/ca.key", "**/signing.key", "**/svid.key", "**/*.passphrase")
"""Mesh secrets wherever they are in the build context: the CA's, the policy signing
key, identities' keys (`eblocks ca`, `eblocks up`)."""


def dockerignore(options: DockerOptions) -> str:
    """What the build of a rendered image never copies from the spec's folder.

    A Dockerfile-specific ignore file (``<name>.Dockerfile.dockerignore`` next to
    the Dockerfile; BuildKit, Docker's builder since 23.0, and compose read it):
    the state dirs (``.eblocks``, or the one given) with the mesh's CA and
    signing keys, the render's own output (the gossip key is made there), any
    file named as a mesh key, and what never belongs in an image.
    """
    lines = [
        "# written by eblocks render: what an image's build never copies from the spec's folder",
        ".eblocks",
        "**/.eblocks",
    ]
    for folder in (options.state_root, options.out):
        inside = folder is not None and _inside(folder, options.spec_dir)
        if inside and folder is not None:
            lines.append(_relative(folder, options.spec_dir))
    lines += [*_SECRETS, ".git", "**/__pycache__"]
    return "\n".join(dict.fromkeys(lines)) + "\n"


def _inside(folder: Path, root: Path) -> bool:
    """Whether ``folder`` is ``root`` or under it (both made absolute)."""
    return folder.absolute().is_relative_to(root.absolute())


def image(prefix: str, names: Names, block: str, tag: str) -> str:
    return f"{prefix}{names.block(block)}:{tag}"


def dockerfile(spec: MeshSpec, block: str, source: str, *, policy: bool = False) -> str:
    """The Dockerfile of one block's image (build context: the spec's folder).

    ``policy``: the instance reads the policy public key and run id at `POLICY_DIR`.
    """
    args = instance_args(block) + ADMIN_ANY + (PolicyTrust.args() if policy else [])
    run = _shell("exec python -m eblocks.runtime.instance", args)
    lines = [
        header(source, f"image of block {block!r} of mesh {spec.mesh!r}").rstrip("\n"),
        "# Build from the spec's folder, with the eblocks wheel in its wheels/ folder:",
        f"#   docker build -f <out>/{block}.Dockerfile -t {spec.mesh}-{block} <spec folder>",
        *_install(spec, "COPY . /app", "requirements.txt"),
        f"ENV EBLOCKS_MESH={spec.mesh} EBLOCKS_BLOCK={block}",
        f"EXPOSE {HTTP_PORT}/tcp {ADMIN_PORT}/tcp {_gossip_port(spec)}/udp",
        "STOPSIGNAL SIGTERM",
        "HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\",
        f"  CMD {json.dumps(['python', '-c', _probe(spec, block)])}",
        f"CMD {json.dumps(['sh', '-c', run])}",
    ]
    return "\n".join(lines) + "\n"


def proxy_dockerfile(spec: MeshSpec, source: str) -> str:
    """The image of external blocks' proxies: Eblocks alone (compose gives each its command)."""
    lines = [
        header(source, f"image of the sidecar proxy of mesh {spec.mesh!r}").rstrip("\n"),
        "# Build from the spec's folder, with the eblocks wheel in its wheels/ folder:",
        f"#   docker build -f <out>/{PROXY_DOCKERFILE} -t eblocks <spec folder>",
        *_install(spec, "COPY wheels /app/wheels", None),
        f"EXPOSE {HTTP_PORT}/tcp {ADMIN_PORT}/tcp {_gossip_port(spec)}/udp",
        "STOPSIGNAL SIGTERM",
        f"CMD {json.dumps(['python', '-m', 'eblocks', 'proxy', '--help'])}",
    ]
    return "\n".join(lines) + "\n"


def _install(spec: MeshSpec, copy: str, requirements: str | None) -> list[str]:
    """The lines every image shares: Python, Eblocks from the wheel, the user, the state dir."""
    extra = (
        [
            f" && if [ -f {requirements} ]; then \\",
            f"      pip install --no-cache-dir -r {requirements}; fi \\",
        ]
        if requirements is not None
        else []
    )
    return [
        f"FROM {PYTHON_IMAGE}",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app",
        "WORKDIR /app",
        copy,
        "RUN pip install --no-cache-dir --find-links /app/wheels "
        f'"eblocks[fast]=={__version__}" \\',
        *extra,
        f" && groupadd --gid {RUN_AS} eblocks \\",
        f" && useradd --uid {RUN_AS} --gid {RUN_AS} --no-create-home "
        "--shell /usr/sbin/nologin eblocks \\",
        f" && mkdir -p {STATE_DIR} /etc/eblocks && chown {RUN_AS}:{RUN_AS} {STATE_DIR} \\",
        f" && ln -s /run/secrets/gossip_key {STATE_DIR}/gossip.key",
        f"USER {RUN_AS}:{RUN_AS}",
    ]


def _shell(program: str, args: list[str]) -> str:
    """``program args`` as a ``sh -c`` line, the pod's $(VAR)s as the container's own values."""
    words = list(args)
    words[words.index("$(POD_NAME)")] = '"$(hostname)"'
    words[words.index("$(POD_IP)")] = f'"{_ADDRESS}"'
    words[words.index("*")] = "'*'"  # a shell runs the line: no glob
    return f"{program} {' '.join(words)}"


def _probe(spec: MeshSpec, block: str) -> str:
    """Python that fails unless the container's ``/readyz`` answers 2xx."""
    scheme = "https" if admin_tls(spec, block) else "http"  # probes need no certificate
    return _PROBE.format(scheme=scheme, port=ADMIN_PORT, path="/readyz")


def _externals(spec: MeshSpec) -> list[str]:
    return sorted(b for b, block in spec.blocks.items() if block.external is not None)


def _compose(spec: MeshSpec, names: Names, options: DockerOptions, context: str) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for block in sorted(spec.blocks):
        if spec.blocks[block].external is not None:
            services.update(_external_services(spec, names, block, options, context))
            continue
        service = _mesh_service(spec, names, block, options)
        service["image"] = image(options.image_prefix, names, block, options.tag)
        service["build"] = _build(options, context, f"{block}.Dockerfile")
        service["deploy"] = {"replicas": spec.settings(block).replicas}
        if spec.blocks[block].env:
            service["environment"] = {k: _literal(v) for k, v in spec.blocks[block].env.items()}
        services[block] = service
    return {
        "name": spec.mesh,
        "services": services,
        "configs": {"spec": {"file": "./mesh.yaml"}},
        # The operator makes it: `openssl rand -hex 32 > gossip.key` (docs/kubernetes.md).
        "secrets": {"gossip_key": {"file": "./gossip.key"}},
        "networks": {"mesh": {}},
    }


def _mesh_service(
    spec: MeshSpec, names: Names, block: str, options: DockerOptions
) -> dict[str, Any]:
    """What every container that is an instance of ``block`` has (a Python block's or a proxy)."""
    service: dict[str, Any] = {
        "configs": [{"source": "spec", "target": SPEC_FILE}],
        "secrets": [{"source": "gossip_key", "target": "gossip_key"}],
        "stop_grace_period": f"{grace_seconds(spec, block)}s",
        "tmpfs": ["/tmp"],
        "networks": {"mesh": {"aliases": [names.gossip_service]}},
        "restart": "unless-stopped",
    }
    volumes = _mounts(spec, block, options)
    if volumes:
        service["volumes"] = volumes
    return service


def _literal(value: str) -> str:
    """``value`` as compose passes it on: compose reads ``$VAR`` from the host; ``$$`` is ``$``."""
    return value.replace("$", "$$")


def _build(options: DockerOptions, context: str, dockerfile: str) -> dict[str, str]:
    return {"context": context, "dockerfile": _relative(options.out / dockerfile, options.spec_dir)}


def _external_services(
    spec: MeshSpec, names: Names, block: str, options: DockerOptions, context: str
) -> dict[str, Any]:
    """Per replica, the proxy (``<block>_<i>``) and the program sharing its network (``_app``)."""
    policy = options.policy is not None
    run = _shell("exec python -m eblocks", proxy_args(spec, block, policy=policy))
    probe = _probe(spec, block)
    env = {entry["name"]: _literal(entry["value"]) for entry in app_env(spec, block)}
    external = spec.blocks[block].external
    assert external is not None  # `_compose` sends only external blocks here
    services: dict[str, Any] = {}
    for replica in range(1, spec.settings(block).replicas + 1):
        proxy_name = f"{block}_{replica}"
        proxy = _mesh_service(spec, names, block, options)
        proxy["image"] = options.proxy_image or f"{options.image_prefix}eblocks:{options.tag}"
        if options.proxy_image is None:
            proxy["build"] = _build(options, context, PROXY_DOCKERFILE)
        proxy["command"] = ["sh", "-c", _literal(run)]
        proxy["environment"] = {"EBLOCKS_MESH": spec.mesh, "EBLOCKS_BLOCK": block}
        proxy["healthcheck"] = {
            "test": ["CMD", "python", "-c", probe],
            "interval": "10s",
            "timeout": "3s",
            "start_period": "30s",
            "retries": 3,
        }
        services[proxy_name] = proxy
        services[f"{proxy_name}_app"] = {
            "command": [_literal(word) for word in external.command],
            "depends_on": {proxy_name: {"condition": "service_started"}},
            "environment": env,
            "image": image(options.image_prefix, names, block, options.tag),
            "network_mode": f"service:{proxy_name}",  # the proxy's loopback: a pod's
            "restart": "unless-stopped",
            "stop_grace_period": f"{grace_seconds(spec, block)}s",
            "tmpfs": ["/tmp"],
        }
    return services


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
