"""`eblocks render`: the mesh as Kubernetes manifests or Dockerfiles (docs/kubernetes.md).

Like `eblocks up`, it makes the mesh's policy signing key in the state dir when
there is none; the rendered instances get its public half and the run id
(`eblocks.deploy.policy`), so `eblocks apply --state-dir <same> --admin-url ...`
signs bundles they accept.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from eblocks.cli.common import console, err, fail, load_or_exit
from eblocks.cli.run_cmds import STATE_OPTION
from eblocks.errors import RenderError
from eblocks.runtime.state import StateDir

if TYPE_CHECKING:  # the renderers: imported by `render` (CLI start-up)
    from eblocks.deploy.names import Names
    from eblocks.spec.models import MeshSpec

__all__ = ["register"]


class Target(StrEnum):
    kubernetes = "kubernetes"
    docker = "docker"


class NetworkPolicy(StrEnum):
    edges = "edges"
    mesh = "mesh"
    none = "none"


def render(
    spec: Path = typer.Argument(Path("mesh.yaml"), help="the mesh spec"),
    target: Target = typer.Option(Target.kubernetes, "--target", "-t", help="what to render"),
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Kubernetes namespace (default: the mesh's name)"
    ),
    image_prefix: str = typer.Option(
        "", "--image-prefix", help="prepended to image names <mesh>-<block>:<tag>"
    ),
    tag: str = typer.Option("latest", "--tag", help="image tag"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="folder to write (Kubernetes default: one stream on stdout)"
    ),
    network_policy: NetworkPolicy = typer.Option(
        NetworkPolicy.edges,
        "--network-policy",
        help="edges: callers from the patterns; mesh: any block; none: no NetworkPolicies",
    ),
    identity: bool = typer.Option(
        True, "--identity/--no-identity", help="render the CA role and join-token mounts"
    ),
    proxy_image: str | None = typer.Option(
        None,
        "--proxy-image",
        help="Eblocks' image for external blocks' sidecars (default: <prefix>eblocks:<tag>)",
    ),
    state_dir: Path | None = STATE_OPTION,
    new_run: bool = typer.Option(
        False, "--new-run", help="start a new policy run: bundles applied before are refused"
    ),
) -> None:
    """Render the mesh for Kubernetes (validated against the official schemas) or Docker."""
    from eblocks.deploy.docker import DockerOptions, docker_files
    from eblocks.deploy.kubernetes import KUBERNETES_VERSION, KubeOptions, kubernetes_files
    from eblocks.deploy.names import Names
    from eblocks.deploy.output import write_files
    from eblocks.deploy.policy import PolicyTrust
    from eblocks.security.modes import uses_mtls

    mesh = load_or_exit(spec)
    try:
        names = Names.checked(mesh, namespace if target is Target.kubernetes else None)
        state = StateDir.for_mesh(mesh.mesh, state_dir)
        policy = PolicyTrust.from_state(state.path, fresh_run=new_run)
        if target is Target.kubernetes:
            options = KubeOptions(
                namespace=namespace,
                image_prefix=image_prefix,
                tag=tag,
                identity=identity,
                network_policy=network_policy.value,
                source=spec.name,
                proxy_image=proxy_image,
                policy=policy,
            )
            files = kubernetes_files(mesh, options)
        else:
            if out is None:
                fail("--target docker writes several files: give --out DIR")
            files = docker_files(
                mesh,
                DockerOptions(
                    spec_dir=spec.parent,
                    out=out,
                    image_prefix=image_prefix,
                    tag=tag,
                    source=spec.name,
                    policy=policy,
                    proxy_image=proxy_image,
                    state_root=state.path.parent,
                ),
            )
        if out is None:
            typer.echo("".join(files.values()), nl=False)
        else:
            written = write_files(files, out)
        if target is Target.kubernetes:
            _secret_commands(mesh, names, spec.parent)
    except RenderError as exc:
        fail(str(exc))
    if out is None:
        return
    what = f" (Kubernetes {KUBERNETES_VERSION})" if target is Target.kubernetes else ""
    console.print(f"wrote {len(written)} files of mesh {mesh.mesh!r} to {out}{what}")
    if target is Target.docker and uses_mtls(mesh):
        err.print(
            "[yellow]warning:[/] the docker target renders no identity flow: with mTLS on "
            "the containers find no SVID and stop (set `security: {mtls: disable}` for a "
            "compose run, or `eblocks ca join` each host first; docs/kubernetes.md, Limits)",
            soft_wrap=True,
        )


def _secret_commands(mesh: MeshSpec, names: Names, spec_dir: Path) -> None:
    """On stderr (stdout may be the manifests): the Secrets of gateways' files to create."""
    from eblocks.deploy.gateway_files import operator_commands

    commands = operator_commands(mesh, names, spec_dir.as_posix())
    if commands:
        err.print("create the gateways' Secrets (their files are never rendered):")
        for command in commands:
            err.print(f"  {command}", soft_wrap=True, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(render)
