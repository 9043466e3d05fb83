"""What one proxy is told: its block, the app's port, its upstreams (pure, no I/O).

``--upstream BLOCK=PORT`` opens ``127.0.0.1:PORT`` for the app; its requests go
through the mesh client to ``BLOCK`` (a block or a pattern). ``BLOCK=PORT/tcp``
tunnels opaque bytes to an instance of ``BLOCK`` instead (a proxy in ``--tcp``
mode). A spec's ``external.upstreams`` maps the same way; the protocol of a
spec upstream is that of its target (a ``protocol: tcp`` external block: tcp).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from eblocks.spec.models import MeshSpec

__all__ = [
    "Protocol",
    "Upstream",
    "check_upstreams",
    "exit_code_of",
    "parse_upstream",
    "spec_upstreams",
]

Protocol = Literal["http", "tcp"]

_UPSTREAM = re.compile(
    r"^(?P<target>[a-z0-9]([a-z0-9-]*[a-z0-9])?)=(?P<port>[0-9]{1,5})(?P<tcp>/tcp)?$"
)


@dataclass(frozen=True, slots=True)
class Upstream:
    """A local port the app calls ``target`` on."""

    target: str
    port: int
    protocol: Protocol = "http"

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"upstream {self.target!r}: port must be 1..65535, got {self.port}")

    def __str__(self) -> str:
        return f"{self.target}={self.port}" + ("/tcp" if self.protocol == "tcp" else "")


def parse_upstream(text: str) -> Upstream:
    """``store=18081`` or ``db=15432/tcp``; a `ValueError` that quotes ``text`` otherwise."""
    found = _UPSTREAM.match(text.strip())
    if found is None:
        raise ValueError(f"--upstream {text!r}: expected BLOCK=PORT or BLOCK=PORT/tcp")
    protocol: Protocol = "tcp" if found["tcp"] else "http"
    return Upstream(found["target"], int(found["port"]), protocol)


def check_upstreams(upstreams: Iterable[Upstream], app_port: int, spec: MeshSpec | None) -> None:
    """Ports distinct from each other and from the app's; targets known to the spec."""
    seen: dict[int, str] = {app_port: "the app"}
    for up in upstreams:
        if up.port in seen:
            raise ValueError(f"upstream {up}: port {up.port} is already {seen[up.port]}'s")
        seen[up.port] = f"upstream {up.target!r}"
        if spec is None:
            raise ValueError(f"upstream {up}: upstreams need the mesh's spec (--spec)")
        if up.target not in spec.blocks and up.target not in spec.patterns:
            known = ", ".join(sorted([*spec.blocks, *spec.patterns]))
            raise ValueError(f"upstream {up}: no block or pattern {up.target!r} (known: {known})")
        if up.protocol == "tcp" and up.target not in spec.blocks:
            raise ValueError(f"upstream {up}: a tcp upstream must be a block, not a pattern")


def spec_upstreams(spec: MeshSpec, block: str) -> tuple[Upstream, ...]:
    """The upstreams an ``external`` block declares, each with its target's protocol."""
    external = spec.blocks[block].external
    if external is None:
        return ()
    found = []
    for target, port in sorted(external.upstreams.items()):
        other = spec.blocks.get(target)
        tcp = other is not None and other.external is not None and other.external.protocol == "tcp"
        found.append(Upstream(target, port, "tcp" if tcp else "http"))
    return tuple(found)


def exit_code_of(returncode: int) -> int:
    """The proxy's exit code for an app's return code: a signal ``N`` becomes ``128 + N``."""
    if returncode >= 0:
        return returncode
    return 128 - returncode
