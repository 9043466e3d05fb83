"""Discovery: where the instances of each block are.

Two resolvers: `SupervisorResolver` (the embedded default, a file the local
supervisor writes) and `GossipResolver` (SWIM-style gossip membership across
hosts, no central registry; see ``docs/discovery.md``).
"""

from eblocks.discovery.gossip_resolver import GossipResolver
from eblocks.discovery.member import Health, Load, Member, MemberRecord, MemberStatus
from eblocks.discovery.supervisor import SupervisorResolver, write_endpoints
from eblocks.discovery.swim import SwimConfig, SwimNode
from eblocks.discovery.udp import GossipNode
from eblocks.discovery.wire import Keyring

__all__ = [
    "GossipNode",
    "GossipResolver",
    "Health",
    "Keyring",
    "Load",
    "Member",
    "MemberRecord",
    "MemberStatus",
    "SupervisorResolver",
    "SwimConfig",
    "SwimNode",
    "write_endpoints",
]
