"""Transports: the innermost layer of the client stack."""

from eblocks.transport.http import HttpTransport

__all__ = ["HttpTransport"]
