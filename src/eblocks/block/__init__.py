"""The Eblock runtime: server, context, client and the layer order.

The names below are imported on first use (PEP 562), so a module that needs
only `eblocks.block.context` (the workload's roles do) does not import the
server, which imports the roles back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eblocks._lazy import lazy_exports

if TYPE_CHECKING:
    from eblocks.block.block import Block, mesh_client
    from eblocks.block.client import MeshClient
    from eblocks.block.context import Context

__all__ = ["Block", "Context", "MeshClient", "mesh_client"]

_HOME = {
    "Block": "block",
    "mesh_client": "block",
    "MeshClient": "client",
    "Context": "context",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
