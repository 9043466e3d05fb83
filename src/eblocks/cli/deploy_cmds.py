"""`eblocks render`: the mesh as Kubernetes manifests or Dockerfiles (docs/kubernetes.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from eblocks.cli.common import console, fail, load_or_exit
from eblocks.deploy.docker import DockerOptions, docker_files
from eblocks.deploy.kubernetes import KUBERNETES_VERSION, KubeOptions, kubernetes_files
from eblocks.deploy.output import write_files
from eblocks.errors import RenderError

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
) -> None:
    """Render the mesh for Kubernetes (validated against the official schemas) or Docker."""
    mesh = load_or_exit(spec)
    try:
        if target is Target.kubernetes:
            options = KubeOptions(
                namespace=namespace,
                image_prefix=image_prefix,
                tag=tag,
                identity=identity,
                network_policy=network_policy.value,
                source=spec.name,
                proxy_image=proxy_image,
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
                ),
            )
        if out is None:
            typer.echo("".join(files.values()), nl=False)
            return
        written = write_files(files, out)
    except RenderError as exc:
        fail(str(exc))
    what = f" (Kubernetes {KUBERNETES_VERSION})" if target is Target.kubernetes else ""
    console.print(f"wrote {len(written)} files of mesh {mesh.mesh!r} to {out}{what}")


def register(app: typer.Typer) -> None:
    app.command()(render)
