"""The local runtime: the supervisor, instance processes and the state dir."""

from eblocks.runtime.state import StateDir, find_state
from eblocks.runtime.supervisor import InstanceState, Supervisor, restart_delay

__all__ = ["InstanceState", "StateDir", "Supervisor", "find_state", "restart_delay"]
