"""Patterns compiled from the spec into roles and routes."""

from eblocks.patterns.plan import Plan, SendTo

__all__ = ["Plan", "SendTo"]
