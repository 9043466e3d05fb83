"""The `eblocks` command line."""

from eblocks.cli.app import app, main

__all__ = ["app", "main"]
