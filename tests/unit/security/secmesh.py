"""Real TLS blocks on loopback with identities from a real mesh CA in a temp state dir."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eblocks import Block, MeshClient
from eblocks.security import Auth, Identity, LocalIssuer
from eblocks.security.ca import MeshCA
from eblocks.spec import MeshSpec, parse_spec
from eblocks.testing import StaticResolver


def make_spec(extra: str = "", blocks: str = "") -> MeshSpec:
    text = f"""
apiVersion: eblocks/v1
mesh: sec
defaults:
  timeout: 10s
  retries: {{attempts: 1}}
blocks:
  front: {{handler: "tests:front"}}
  back: {{handler: "tests:back"}}
{blocks}
{extra}
"""
    return parse_spec(text, "sec.yaml")


class SecureMesh:
    """Blocks with `Auth` from SVIDs the `LocalIssuer` wrote, and clients with identities."""

    def __init__(self, spec: MeshSpec, state: Path) -> None:
        self.spec = spec
        self.state = state
        self.now = 0.0
        """The issuer's clock: a CA rotation issues from the new CA once it has moved on."""
        self.issuer = LocalIssuer(spec, state, clock=lambda: self.now)
        self.resolver = StaticResolver()
        self.blocks: dict[str, Block] = {}
        self.clients: list[MeshClient] = []

    def auth(self, holder: str, block: str | None = None) -> Auth:
        if block is not None:
            self.issuer.issue_block(holder, block)
        else:
            self.issuer.issue_client(holder)
        auth = Auth.for_holder(self.spec, self.state, holder, block=block, spec_dir=self.state)
        assert auth is not None
        return auth

    async def start(self, block: str, handler: Callable[..., Any]) -> Block:
        auth = self.auth(f"{block}-0", block)
        client = MeshClient(self.spec, self.resolver, source=block, auth=auth)
        started = Block.in_mesh(
            block, handler, app=None, client=client, instance=f"{block}-0", auth=auth
        )
        await started.start("127.0.0.1", 0)
        self.blocks[block] = started
        self.resolver.set(block, [f"127.0.0.1:{started.port}"])
        return started

    def client(self, holder: str = "cli", *, auth: Auth | None = None) -> MeshClient:
        if auth is None:
            auth = self.auth(holder)
        client = MeshClient(self.spec, self.resolver, source=holder, auth=auth)
        self.clients.append(client)
        return client

    def foreign_identity(self, folder: Path) -> Path:
        """``client/cli`` of this mesh's name from another CA, written to ``folder``."""
        domain = self.spec.security.trust_domain
        other = MeshCA.init(folder.with_name(folder.name + "-ca"), domain)
        svid = other.issue(Identity(domain, self.spec.mesh, "cli", "client"), dt.timedelta(hours=1))
        svid.write(folder, other.bundle + self.issuer.ca().bundle)
        return folder

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for block in self.blocks.values():
            await block.stop()


def damage_signature(svid_pem: Path) -> None:
    """Flip one bit of the signature of the certificate in ``svid_pem`` (it still parses)."""
    cert = x509.load_pem_x509_certificate(svid_pem.read_bytes())
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    damaged = x509.load_der_x509_certificate(bytes(der))
    svid_pem.write_bytes(damaged.public_bytes(serialization.Encoding.PEM))
