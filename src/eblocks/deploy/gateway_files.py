"""A gateway's certificate and key files in a pod: Secrets the operator creates, mounted read-only.

A gateway reads the files its spec names (`GatewayTls`, `EgressHost`) relative
to the spec's folder. In a pod that folder is the ConfigMap ``<mesh>-spec``,
and a private key belongs in neither a ConfigMap nor an image. So the spec the
pods run names absolute paths under `GATEWAY_DIR` instead (`rewrite`), each a
key of a Secret the operator makes from the original files (`operator_commands`)::

    ingress tls {cert, key}         Secret <mesh>-<block>-tls, type kubernetes.io/tls
                                    (tls.crt, tls.key) at /var/run/eblocks/gateway/tls/
    egress ca_file, client_cert,    Secret <mesh>-<block>-egress, one key per file
    client_key                      at /var/run/eblocks/gateway/egress/

Nothing of the files' contents is rendered. The docker target bind-mounts the
original files read-only at the same paths.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from eblocks.deploy.names import GATEWAY_DIR, Names
from eblocks.spec.gateway import EgressGateway, IngressGateway
from eblocks.spec.models import MeshSpec

__all__ = ["GatewayFiles", "gateway_files", "operator_commands", "rewrite"]

_KEY = re.compile(r"[^-._a-zA-Z0-9]")
_EGRESS_FIELDS = ("ca_file", "client_cert", "client_key")


@dataclass(frozen=True, slots=True)
class GatewayFiles:
    """One Secret of one gateway block: which spec files become which keys, mounted where."""

    block: str
    kind: Literal["tls", "egress"]
    files: tuple[tuple[str, str], ...]
    """(key in the Secret, the file as the user's spec names it), sorted by key."""

    @property
    def folder(self) -> str:
        return f"{GATEWAY_DIR}/{self.kind}"

    def path(self, key: str) -> str:
        return f"{self.folder}/{key}"

    def key_of(self, source: str) -> str:
        return next(key for key, src in self.files if src == source)

    def volume_name(self) -> str:
        return f"gateway-{self.kind}"

    def volume(self, names: Names) -> dict[str, Any]:
        # 0440, group fsGroup: the non-root user reads the key, nobody else.
        secret = {"secretName": names.gateway_secret(self.block, self.kind), "defaultMode": 0o440}
        return {"name": self.volume_name(), "secret": secret}

    def mount(self) -> dict[str, Any]:
        return {"name": self.volume_name(), "mountPath": self.folder, "readOnly": True}


def gateway_files(spec: MeshSpec, block: str) -> tuple[GatewayFiles, ...]:
    """The Secrets ``block`` needs (none unless it is a gateway naming files)."""
    gateway = spec.blocks[block].gateway
    if isinstance(gateway, IngressGateway) and gateway.tls is not None:
        tls = (("tls.crt", gateway.tls.cert), ("tls.key", gateway.tls.key))
        return (GatewayFiles(block, "tls", tls),)
    if isinstance(gateway, EgressGateway):
        sources = [s for host in gateway.allow for s in _egress_sources(host)]
        if sources:
            return (GatewayFiles(block, "egress", _keys(sources)),)
    return ()


def _egress_sources(host: Any) -> Iterator[str]:
    for field in _EGRESS_FIELDS:
        value = getattr(host, field)
        if value is not None:
            yield value


def _keys(sources: list[str]) -> tuple[tuple[str, str], ...]:
    """A Secret key per distinct file: its name made key-safe, numbered when two collide."""
    found: dict[str, str] = {}
    for source in dict.fromkeys(sources):  # distinct, in spec order
        base = _KEY.sub("-", PurePosixPath(source).name) or "file"
        key, n = base, 1
        while key in found:
            n += 1
            key = f"{n}-{base}"
        found[key] = source
    return tuple(sorted(found.items()))


def rewrite(data: dict[str, Any], spec: MeshSpec) -> None:
    """Point the gateways of a dumped spec (``data``) at the mounted Secret files, in place."""
    for block in spec.blocks:
        for files in gateway_files(spec, block):
            gateway = data["blocks"][block]["gateway"]
            if files.kind == "tls":
                gateway["tls"] = {"cert": files.path("tls.crt"), "key": files.path("tls.key")}
                continue
            for host in gateway["allow"]:
                for field in _EGRESS_FIELDS:
                    if host.get(field) is not None:
                        host[field] = files.path(files.key_of(host[field]))


def operator_commands(spec: MeshSpec, names: Names, spec_dir: str = ".") -> list[str]:
    """``kubectl create secret`` for every gateway's files (paths below ``spec_dir``)."""
    commands = []
    for block in sorted(spec.blocks):
        for files in gateway_files(spec, block):
            name = names.gateway_secret(block, files.kind)
            head = f"kubectl -n {names.namespace} create secret"
            paths = {
                key: shlex.quote(str(PurePosixPath(spec_dir) / src)) for key, src in files.files
            }
            if files.kind == "tls":
                commands.append(
                    f"{head} tls {name} --cert={paths['tls.crt']} --key={paths['tls.key']}"
                )
            else:
                sources = " ".join(f"--from-file={key}={paths[key]}" for key, _ in files.files)
                commands.append(f"{head} generic {name} {sources}")
    return commands
