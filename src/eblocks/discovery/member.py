"""What a gossip member publishes about itself, and how its status moves.

A :class:`MemberRecord` is the self-description an instance gossips (who it is,
where to reach it, how busy it is); a :class:`Member` is one node's *view* of
another: the record plus a :class:`MemberStatus` and an incarnation number.

Incarnation numbers are owned by the member they describe: only it raises its
own, to refute a suspicion, to publish a changed record, or to rejoin after a
restart. Every update carries ``(incarnation, status)`` and an update wins over
the view when that pair is larger (:func:`supersedes`), so stale rumours lose
against fresh ones whatever order they arrive in.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Health",
    "Load",
    "Member",
    "MemberRecord",
    "MemberStatus",
    "load_changed",
    "member_id",
    "supersedes",
]


class MemberStatus(enum.IntEnum):
    """The status of a member in one node's view; the value is its precedence.

    ::

                 no ack, no indirect ack           suspicion timeout
        ALIVE ─────────────────────────▶ SUSPECT ─────────────────────▶ DEAD
          ▲  ◀─────────────────────────────┘                             │
          │     refuted: ALIVE with a higher incarnation                 │
          └──────────────────────────────────────────────────────────────┘
          │          rejoin: ALIVE with a higher incarnation             ▲
          │                                                              │
          └──── graceful leave ───▶ LEFT ── rejoin (higher incarnation) ─┘

    At equal incarnation the higher value wins (SUSPECT beats ALIVE, DEAD beats
    SUSPECT, LEFT beats DEAD); ALIVE only wins with a higher incarnation.
    DEAD and LEFT members are removed from endpoint lists and forgotten after
    the reap delay.
    """

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3

    @property
    def reachable(self) -> bool:
        """Whether requests may still be routed to a member in this status."""
        return self in (MemberStatus.ALIVE, MemberStatus.SUSPECT)


class Health(enum.StrEnum):
    """What the member says about itself (its readiness), gossiped in its record."""

    SERVING = "serving"
    DRAINING = "draining"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class Load:
    """A member's load summary; ``seq`` orders summaries from the same member."""

    inflight: int = 0
    ewma_ms: float = 0.0
    queue: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """The self-description one instance publishes to the mesh.

    ``host``/``port`` serve requests, ``admin_port`` the admin API and
    ``gossip_port`` the membership protocol (on the same host).
    ``policy_version`` is the version of the policies it has in force
    (`eblocks.policies.sync`: a peer that sees a higher one fetches it).
    """

    mesh: str
    block: str
    instance: str
    host: str
    port: int
    gossip_port: int
    admin_port: int = 0
    roles: tuple[str, ...] = ()
    identity: str = ""
    version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    zone: str = ""
    health: Health = Health.SERVING
    load: Load = Load()
    policy_version: int = 0

    def __post_init__(self) -> None:
        if not self.instance:
            raise ValueError("MemberRecord.instance must not be empty")
        for name in ("port", "gossip_port", "admin_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ValueError(f"MemberRecord.{name} must be 0..65535, got {value}")

    @property
    def gossip_addr(self) -> tuple[str, int]:
        return (self.host, self.gossip_port)


@dataclass(frozen=True, slots=True)
class Member:
    """One member as a node sees it: record, status, incarnation, since when, last heard."""

    record: MemberRecord
    status: MemberStatus
    incarnation: int
    since: float = 0.0
    last_seen: float = 0.0

    @property
    def instance(self) -> str:
        return self.record.instance


def supersedes(
    status: MemberStatus, incarnation: int, old_status: MemberStatus, old_incarnation: int
) -> bool:
    """Whether an update ``(status, incarnation)`` replaces what a view holds."""
    return (incarnation, int(status)) > (old_incarnation, int(old_status))


def load_changed(old: Load, new: Load, *, ratio: float = 0.2) -> bool:
    """Whether ``new`` differs from ``old`` enough to be worth gossiping."""

    def moved(a: float, b: float, floor: float) -> bool:
        return abs(a - b) >= max(floor, ratio * max(abs(a), abs(b)))

    return (
        moved(old.inflight, new.inflight, 2)
        or moved(old.queue, new.queue, 2)
        or moved(old.ewma_ms, new.ewma_ms, 1.0)
    )


def member_id(instance: str, host: str) -> str:
    """The gossip id of a local instance: unique across hosts, whose supervisors all
    number their instances ``<block>-<i>`` (``clean-0@10.0.0.5``); plain on loopback."""
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    return instance if loopback else f"{instance}@{host}"
