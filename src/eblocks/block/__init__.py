"""The Eblock runtime: server, context, client and the layer order."""

from eblocks.block.block import Block, mesh_client
from eblocks.block.client import MeshClient
from eblocks.block.context import Context

__all__ = ["Block", "Context", "MeshClient", "mesh_client"]
