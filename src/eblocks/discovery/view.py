"""The members view as JSON: what ``/v1/members`` answers and ``eblocks members`` prints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eblocks._types import Endpoint
from eblocks.discovery.member import Member, MemberStatus
from eblocks.discovery.swim import SwimNode

__all__ = ["counters_row", "endpoint_rows", "member_row", "member_rows"]


def member_row(member: Member, now: float) -> dict[str, Any]:
    """One member as a JSON object; ``last_seen`` is seconds ago on the node's clock."""
    record = member.record
    return {
        "block": record.block,
        "instance": record.instance,
        "address": f"{record.host}:{record.port}",
        "gossip": f"{record.host}:{record.gossip_port}",
        "admin_port": record.admin_port,
        "roles": list(record.roles),
        "status": member.status.name.lower(),
        "incarnation": member.incarnation,
        "health": record.health.value,
        "load": {
            "inflight": record.load.inflight,
            "ewma_ms": record.load.ewma_ms,
            "queue": record.load.queue,
        },
        "last_seen": round(max(0.0, now - member.last_seen), 3),
        "zone": record.zone,
        "labels": dict(record.labels),
        "policy_version": record.policy_version,
    }


def member_rows(node: SwimNode, *, block: str | None = None) -> list[dict[str, Any]]:
    """A node's whole view (itself, DEAD and LEFT members too), sorted by block and instance."""
    now = node.clock.monotonic()
    members = sorted(node.members(), key=lambda m: (m.record.block, m.instance))
    me = node.record.instance
    rows = []
    for member in members:
        if block is None or member.record.block == block:
            row = member_row(member, now)
            if member.instance == me and member.status is MemberStatus.ALIVE:
                row["load"]["inflight"] = node.current_load.inflight
            rows.append(row)
    return rows


def counters_row(node: SwimNode) -> dict[str, Any]:
    """A node's traffic counters, dropped packets by reason, and the key ids it accepts."""
    c = node.counters
    return {
        "packets_sent": c.packets_sent,
        "packets_received": c.packets_received,
        "bytes_sent": c.bytes_sent,
        "bytes_received": c.bytes_received,
        "streams_sent": c.streams_sent,
        "streams_received": c.streams_received,
        "stream_failures": c.stream_failures,
        "dropped": dict(c.dropped),
        "dropped_auth": c.dropped_auth,
        "key_ids": node.keyring.accepted(node.clock.monotonic()),
    }


def endpoint_rows(
    view: Mapping[str, Sequence[Endpoint]],
    *,
    block: str | None = None,
    roles: Mapping[str, Iterable[str]] | None = None,
) -> list[dict[str, Any]]:
    """The supervisor mode's view (ready endpoints) in the same shape as :func:`member_rows`."""
    rows = []
    for name, endpoints in sorted(view.items()):
        if block is not None and name != block:
            continue
        for ep in sorted(endpoints, key=lambda e: e.instance):
            rows.append(
                {
                    "block": ep.block,
                    "instance": ep.instance,
                    "address": f"{ep.host}:{ep.port}",
                    "gossip": "",
                    "admin_port": 0,
                    "roles": list((roles or {}).get(name, ())),
                    "status": "alive",
                    "incarnation": 0,
                    "health": "serving",
                    "load": None,
                    "last_seen": None,
                    "zone": "",
                    "labels": dict(ep.labels),
                }
            )
    return rows
