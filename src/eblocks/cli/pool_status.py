"""The patterns part of `eblocks status`: roles, pool sizes and queue depths.

Three sources, each read once: the spec the mesh runs (``spec.yaml``), the
supervisor's pool view (``pools.json``: bounds and targets of autoscaled
pools) and ``GET /v1/pools`` of every ready manager and divider instance
(queues, in-flight tasks and the last scale-up time, live), asked as the CLI
(`AdminAccess`: https with its SVID where the admin port is TLS). An instance
that does not answer within a second is shown as such, never waited on.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
from rich.table import Table

from eblocks.errors import SecurityError, SpecError, SupervisorError
from eblocks.runtime.state import StateDir, read_json
from eblocks.security.admin import AdminAccess
from eblocks.security.local import CLI_HOLDER
from eblocks.spec import MeshSpec, load_spec
from eblocks.spec.models import DivideConquerSpec, ManagerWorkerSpec, PipelineSpec

__all__ = ["fetch_pools", "pattern_table"]

_COLUMNS = ("pattern", "kind", "roles", "workers", "ready/target", "active", "queued", "scale-up")


def fetch_pools(
    url: str, context: ssl.SSLContext | None, timeout: float = 1.0
) -> dict[str, Any] | None:
    """One instance's ``/v1/pools`` answer, or None when it does not answer in time."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            data = orjson.loads(resp.read())
    except (OSError, urllib.error.URLError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def pattern_table(state: StateDir, running: bool) -> Table | None:
    """A table of every pattern of the mesh, or None when the mesh has none."""
    try:
        spec = load_spec(state.spec)
        pools = (read_json(state.pools) or {}).get("pools", {})
    except (SpecError, SupervisorError, OSError):
        return None
    if not spec.patterns:
        return None
    rows = (read_json(state.state) or {}).get("instances", [])
    live = _live_pools(spec, state, rows) if running else {}
    table = Table(title="patterns")
    for column in _COLUMNS:
        table.add_column(column, justify="right" if column in {"active", "queued"} else "left")
    ready: dict[str, int] = {}
    for row in rows:
        if row.get("ready") and running:
            ready[row["block"]] = ready.get(row["block"], 0) + 1
    for name, pattern in spec.patterns.items():
        table.add_row(*_row(name, pattern, ready, pools, live.get(name, []), spec.patterns))
    return table


def _live_pools(
    spec: MeshSpec, state: StateDir, rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """pattern -> the ``/v1/pools`` rows of it from every ready instance that holds a role."""
    try:
        access = AdminAccess.of(spec, state.path, CLI_HOLDER)
    except SecurityError:
        return {}  # no CLI identity (yet): the table shows what the files say
    holders = set()
    for pattern in spec.patterns.values():
        if isinstance(pattern, ManagerWorkerSpec):
            holders.add(pattern.manager_worker.manager)
        elif isinstance(pattern, DivideConquerSpec):
            holders.add(pattern.divide_conquer.divide)
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["block"] not in holders or not row.get("ready") or not row.get("admin_port"):
            continue
        answer = fetch_pools(access.row_url(row, "/v1/pools"), access.ssl)
        for pool in (answer or {}).get("pools", []):
            found.setdefault(pool["pattern"], []).append(pool)
    return found


def _row(
    name: str,
    pattern: Any,
    ready: Mapping[str, int],
    pools: Mapping[str, Any],
    live: Sequence[Mapping[str, Any]],
    patterns: Collection[str],
) -> list[str]:
    if isinstance(pattern, PipelineSpec):
        return [name, "pipeline", "filter: " + " -> ".join(pattern.stages), "-", "-", "-", "-", "-"]
    if isinstance(pattern, DivideConquerSpec):
        body = pattern.divide_conquer
        roles = f"divider: {body.divide}, combiner: {body.combine}"
        size = "-" if body.worker in patterns else str(ready.get(body.worker, 0))
        return [name, "divide-conquer", roles, body.worker, size, "-", "-", "-"]
    mw = pattern.manager_worker
    pool = pools.get(mw.worker)
    size = str(ready.get(mw.worker, 0))
    if pool is not None:
        size += f"/{pool['target']} [{pool['min']}-{pool['max']}]"
    if live:
        active = str(sum(int(p.get("active", 0)) for p in live))
        queued = f"{sum(int(p.get('queued', 0)) for p in live)}/{mw.queue.max}"
    else:
        active, queued = "-", f"-/{mw.queue.max}"
    return [
        name,
        "manager-worker",
        f"manager: {mw.manager}",
        mw.worker,
        size,
        active,
        queued,
        _scale_up(live),
    ]


def _scale_up(live: Sequence[Mapping[str, Any]]) -> str:
    times = [
        float(p["autoscale"]["last_scale_up_s"])
        for p in live
        if p.get("autoscale") and p["autoscale"].get("last_scale_up_s") is not None
    ]
    return f"{max(times):.2f}s" if times else "-"
