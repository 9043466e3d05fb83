"""The Eblock runtime: server, context, client and the layer order.

The names below are imported on first use (PEP 562), so a module that needs
only `eblocks.block.context` (the workload's roles do) does not import the
server, which imports the roles back.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eblocks.block.block import Block, mesh_client
    from eblocks.block.client import MeshClient
    from eblocks.block.context import Context

__all__ = ["Block", "Context", "MeshClient", "mesh_client"]

_HOME = {
    "Block": "eblocks.block.block",
    "mesh_client": "eblocks.block.block",
    "MeshClient": "eblocks.block.client",
    "Context": "eblocks.block.context",
}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'eblocks.block' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
