"""Discovery: where the instances of each block are."""

from eblocks.discovery.supervisor import SupervisorResolver, write_endpoints

__all__ = ["SupervisorResolver", "write_endpoints"]
