"""Patterns compiled from the spec into roles and routes."""

from eblocks.patterns.plan import Pattern, Plan, SendTo, entry_block

__all__ = ["Pattern", "Plan", "SendTo", "entry_block"]
