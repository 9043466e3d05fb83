"""The local runtime: the supervisor, instance processes and the state dir.

The supervisor (and all it runs) is imported on first use (PEP 562): a CLI
command that only reads the state dir does not load the mesh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eblocks.runtime.state import StateDir, find_state

if TYPE_CHECKING:
    from eblocks.runtime.supervisor import InstanceState, Supervisor, restart_delay

__all__ = ["InstanceState", "StateDir", "Supervisor", "find_state", "restart_delay"]

_SUPERVISOR = frozenset({"InstanceState", "Supervisor", "restart_delay"})


def __getattr__(name: str) -> object:
    if name not in _SUPERVISOR:
        raise AttributeError(f"module 'eblocks.runtime' has no attribute {name!r}")
    from eblocks.runtime import supervisor

    value = getattr(supervisor, name)
    globals()[name] = value
    return value
