"""The CPU-bound handlers of `eblocks bench patterns`: the same work behind every pattern.

A task is ``{"iters": n, "seed": s}``: ``burn`` chains ``n`` SHA-256 hashes
from the seed (pure CPU, holding the GIL, one core per process). ``split``
cuts a task into ``parts`` tasks of ``n / parts`` iterations and ``join``
merges the parts' digests in order, so divide-conquer does the same total
work as one ``burn``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from eblocks.message import Message

__all__ = ["burn", "calibrate", "chain", "join", "split"]


def chain(seed: str, iters: int) -> str:
    """``iters`` chained SHA-256 hashes of ``seed``: the unit of work."""
    digest = seed.encode()
    for _ in range(iters):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def burn(msg: Message) -> dict[str, Any]:
    task = msg.json()
    return {"digest": chain(str(task["seed"]), int(task["iters"]))}


def split(msg: Message) -> list[dict[str, Any]]:
    task = msg.json()
    parts, iters = int(task["parts"]), int(task["iters"])
    share = [iters // parts + (1 if i < iters % parts else 0) for i in range(parts)]
    return [{"iters": n, "seed": f"{task['seed']}/{i}"} for i, n in enumerate(share)]


def join(msg: Message) -> dict[str, Any]:
    return {"digests": [part["digest"] for part in msg.json()]}


def calibrate(work_ms: float, *, probe: int = 20_000, rounds: int = 5) -> tuple[int, float]:
    """Iterations for ``work_ms`` of CPU here, and the CPU seconds they really take (median)."""
    costs = []
    for i in range(rounds):
        began = time.process_time()
        chain(f"probe-{i}", probe)
        costs.append((time.process_time() - began) / probe)
    per_iter = sorted(costs)[len(costs) // 2]
    iters = max(1, round(work_ms / 1000 / per_iter))
    measured = []
    for i in range(rounds):
        began = time.process_time()
        chain(f"task-{i}", iters)
        measured.append(time.process_time() - began)
    return iters, sorted(measured)[len(measured) // 2]
