"""The local runtime: the supervisor, instance processes and the state dir.

The supervisor (and all it runs) is imported on first use (PEP 562): a CLI
command that only reads the state dir does not load the mesh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eblocks._lazy import lazy_exports
from eblocks.runtime.state import StateDir, find_state

if TYPE_CHECKING:
    from eblocks.runtime.supervisor import InstanceState, Supervisor, restart_delay

__all__ = ["InstanceState", "StateDir", "Supervisor", "find_state", "restart_delay"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {"InstanceState": "supervisor", "Supervisor": "supervisor", "restart_delay": "supervisor"},
)
