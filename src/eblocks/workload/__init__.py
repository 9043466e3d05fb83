"""The Workload Manager: roles, pools and scaling inside each block."""

from eblocks.workload.roles import dispatch

__all__ = ["dispatch"]
