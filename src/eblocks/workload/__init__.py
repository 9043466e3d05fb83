"""The Workload Manager: roles, pools and scaling inside each block.

Roles come from the spec's patterns (`dispatch`): filter, manager
(`Manager`), divider (`Divider`); workers and combiners are plain calls.
A manager-worker pattern that sets ``workers`` is autoscaled: an `Autoscaler`
in each manager instance samples its load, the pure policy in `autoscale`
decides the pool's size, and a `Scaler` (`LocalProcessScaler`,
`KubernetesScaler`) changes it. `Pools` shows them all on ``/v1/pools``.
"""

from eblocks.workload.divider import Divider
from eblocks.workload.manager import Manager, WorkerLink, relay
from eblocks.workload.pools import Autoscaler, Pools
from eblocks.workload.roles import dispatch
from eblocks.workload.scalers import KubernetesScaler, LocalProcessScaler

__all__ = [
    "Autoscaler",
    "Divider",
    "KubernetesScaler",
    "LocalProcessScaler",
    "Manager",
    "Pools",
    "WorkerLink",
    "dispatch",
    "relay",
]
