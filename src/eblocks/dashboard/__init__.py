"""`eblocks dashboard`: a live web page of the mesh, served by aiohttp from this package."""

from eblocks.dashboard.server import Dashboard, snapshot

__all__ = ["Dashboard", "snapshot"]
