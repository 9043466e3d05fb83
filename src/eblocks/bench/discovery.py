"""``eblocks bench discovery``: gossip membership with real member processes on loopback.

Each round, on ``members`` processes (:mod:`.gossip_member`) that have bound
their sockets and wait:

1. **convergence**: every member is told to join three seeds at the same
   moment ``t0``; the figure is the time from ``t0`` until the last member
   holds every other one in its view, ALIVE or SUSPECT (its first full view;
   ``converge_alive_s``: all ALIVE at once, which a starved machine's false
   suspicions can delay or prevent). Process start-up (Python imports, ~0.3 s
   each) is outside the figure: it is not the protocol's doing.
2. **traffic**: after a short settle, the bytes every member sends (UDP and
   TCP push-pull) over a steady window, per member per second.
3. **detection**: one non-seed member gets ``kill -9``; the figure is the time
   until the last survivor marks it DEAD.

Then every member starts a fresh node under a new name (the killed process is
replaced), so rounds are independent. Times are wall clock reported by the
members themselves; the figures are medians over the rounds.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from eblocks.bench.gossip_fleet import Fleet, MemberProcess
from eblocks.discovery.swim import SwimConfig

__all__ = ["TARGETS", "run_loopback", "to_markdown", "write"]

TARGETS = {"converge_s": 2.0, "detect_s": 3.0, "bytes_per_member_s": 2048.0}
SEEDS = 3


async def run_loopback(
    members: int = 50,
    rounds: int = 5,
    *,
    steady: float = 10.0,
    settle: float = 2.0,
    bound: float = 60.0,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the rounds and return the report (settings, per-round figures, medians)."""
    if members < SEEDS + 2:
        raise ValueError(f"at least {SEEDS + 2} members, got {members}")
    rng = random.Random()
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    began = time.monotonic()
    error = ""
    async with Fleet(secrets.token_bytes(32), ready_within=bound * 3) as fleet:
        progress(f"starting {members} member processes")
        procs = await fleet.spawn_many(f"m{i}-r0" for i in range(members))
        try:
            for r in range(rounds):
                if r:
                    progress(f"round {r + 1}: fresh nodes")
                    await asyncio.gather(
                        *(fleet.reset(p, f"m{i}-r{r}") for i, p in enumerate(procs))
                    )
                progress(f"round {r + 1}/{rounds}: converging")
                results.append(await _round(fleet, procs, steady, settle, bound, rng, progress))
                last = results[-1]
                progress(
                    f"round {r + 1}/{rounds} done: converge {last['converge_s']:.2f} s, "
                    f"detect {last['detect_s']:.2f} s, {last['bytes_per_member_s']:.0f} B/member/s"
                    f", {last['false_dead']} false DEAD reports"
                    f" (load average {os.getloadavg()[0]:.1f})"
                )
                victim = procs.index(next(p for p in procs if p.name == results[-1]["victim"]))
                procs[victim] = await fleet.spawn(f"m{victim}-x{r}")  # renamed by the reset
        except (TimeoutError, RuntimeError) as exc:
            if not results:
                raise
            error = f"stopped after {len(results)} round(s): {exc}"
    return {
        "error": error,
        "benchmark": "discovery-loopback",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "members": members,
            "rounds": rounds,
            "steady_s": steady,
            "seeds": SEEDS,
            "tunables": "defaults",
            "probe_interval_s": SwimConfig().probe_interval,
        },
        "wall_s": round(time.monotonic() - began, 1),
        "rounds": results,
        "medians": {
            key: round(statistics.median(r[key] for r in results), 3)
            for key in ("converge_s", "detect_s", "bytes_per_member_s", "bytes_per_member_s_max")
        },
        "targets": TARGETS,
    }


async def _round(
    fleet: Fleet,
    procs: list[MemberProcess],
    steady: float,
    settle: float,
    bound: float,
    rng: random.Random,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    n = len(procs)
    t0 = time.time()
    fleet.join(procs, procs[:SEEDS])
    try:
        await fleet.wait(
            lambda: all(p.first_time_known(n - 1) is not None for p in procs), bound, "convergence"
        )
    except TimeoutError as exc:
        counts = sorted(p.known_now for p in procs)
        raise TimeoutError(f"{exc}; peers known per member now: {counts}") from None
    converge = max(p.first_time_known(n - 1) or t0 for p in procs) - t0
    all_alive = [t for p in procs if (t := p.first_time_alive(n - 1)) is not None]
    converge_alive = max(all_alive) - t0 if len(all_alive) == n else None

    progress("steady traffic")
    await asyncio.sleep(settle)
    await fleet.stats(procs)
    before = {p.name: p.stats for p in procs}
    await asyncio.sleep(steady)
    await fleet.stats(procs)
    rates = sorted(
        (p.stats["bytes_sent"] - before[p.name]["bytes_sent"])
        / (p.stats["t"] - before[p.name]["t"])
        for p in procs
    )

    false_dead = sum(p.downs for p in procs)  # nobody was killed yet: every one is false
    victim = rng.choice(procs[SEEDS:])
    progress(f"kill -9 {victim.name}")
    others = [p for p in procs if p is not victim]
    t_kill = time.time()
    fleet.kill(victim)
    await fleet.wait(
        lambda: all(victim.name in p.down for p in others), bound, f"{victim.name} detected"
    )
    # a survivor that still held the victim DEAD (a false suspicion before the kill, not
    # refuted since) detected it at once, not before the kill
    detect = max(max(p.down[victim.name][1] - t_kill, 0.0) for p in others)
    return {
        "converge_s": round(converge, 3),
        "converge_alive_s": None if converge_alive is None else round(converge_alive, 3),
        "probes_excused": sum(int(p.stats.get("excused", 0)) for p in procs),
        "false_dead": false_dead,
        "detect_s": round(detect, 3),
        "bytes_per_member_s": round(statistics.median(rates), 1),
        "bytes_per_member_s_max": round(rates[-1], 1),
        "victim": victim.name,
        "dropped": sum(int(p.stats.get("dropped", 0)) for p in procs),
    }


def to_markdown(report: dict[str, Any]) -> str:
    s, m, t = report["settings"], report["medians"], report["targets"]
    lines = [
        f"# Discovery: {s['members']} gossip members on loopback",
        "",
        f"`eblocks bench discovery --members {s['members']} --rounds {s['rounds']}` "
        f"({report['created']}, {report['machine']['cpus']} CPUs, load average "
        f"{report['machine']['loadavg_before'][0]} before, "
        f"{report['machine']['loadavg_after'][0]} after; default tunables).",
        "",
        *([f"**Incomplete run**: {report['error']}", ""] if report.get("error") else []),
        "| round | converge s | detect s (kill -9) | bytes/member/s (median) | max member "
        "| false DEAD reports |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(report["rounds"], 1):
        lines.append(
            f"| {i} | {r['converge_s']:.2f} | {r['detect_s']:.2f} | "
            f"{r['bytes_per_member_s']:.0f} | {r['bytes_per_member_s_max']:.0f} | "
            f"{r.get('false_dead', '-')} |"
        )
    lines += [
        f"| **median** | **{m['converge_s']:.2f}** | **{m['detect_s']:.2f}** | "
        f"**{m['bytes_per_member_s']:.0f}** | {m['bytes_per_member_s_max']:.0f} | |",
        f"| target | ≤ {t['converge_s']:g} | ≤ {t['detect_s']:g} | "
        f"≤ {t['bytes_per_member_s']:.0f} | | |",
        "",
        "Convergence: from the moment every member is told to join three seeds until the "
        "last one holds all others in its view (ALIVE or SUSPECT). "
        "Detection: from `kill -9` until the last survivor "
        "marks the member DEAD. Bytes: UDP and TCP push-pull bytes sent per member over a "
        f"{s['steady_s']:g} s steady window. False DEAD reports: members marked DEAD by a "
        "peer before anyone was killed (starved processes that missed their suspicion "
        "timeout; they refute and come back).",
        "",
    ]
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path, name: str = "discovery-loopback") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(to_markdown(report), encoding="utf-8")
    return [json_path, md_path]
