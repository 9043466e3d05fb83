"""The Workload Manager: roles, pools and scaling inside each block.

Roles come from the spec's patterns (`dispatch`): filter, manager
(`Manager`), divider (`Divider`); workers and combiners are plain calls.
Scaling a pool (a `Scaler`, an autoscale policy) is not built yet: a pool is
the worker block's ``replicas``.
"""

from eblocks.workload.divider import Divider
from eblocks.workload.manager import Manager, WorkerLink, relay
from eblocks.workload.roles import dispatch

__all__ = ["Divider", "Manager", "WorkerLink", "dispatch", "relay"]
