"""The `secure_mesh` fixture: real TLS blocks with identities from a real mesh CA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from eblocks.spec import MeshSpec

from .secmesh import SecureMesh


@pytest.fixture
async def secure_mesh(tmp_path: Path) -> AsyncIterator[Callable[[MeshSpec], SecureMesh]]:
    meshes: list[SecureMesh] = []

    def make(spec: MeshSpec) -> SecureMesh:
        mesh = SecureMesh(spec, tmp_path / spec.mesh)
        meshes.append(mesh)
        return mesh

    yield make
    for mesh in meshes:
        await mesh.close()
