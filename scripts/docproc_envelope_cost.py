"""Median cost of seal and open_envelope per risk level, for one document size.

    .venv/bin/python scripts/docproc_envelope_cost.py [--size 4096] [--rounds 200]

A micro-figure for the case study's report, not a test. Each call is timed in
this process twice: wall time (``perf_counter_ns``) and this thread's CPU time
(``thread_time_ns``); on a shared, loaded machine the CPU figure is the steadier
one. The key store is made in a temporary directory, keys generated first.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from docproc.envelope import DATA_KEY_BITS, open_envelope, seal
from docproc.keystore import LEVELS, RSA_BITS, KeyStore

AAD = b"bench-idempotency-key"


@dataclass(frozen=True, slots=True)
class Cost:
    """Median µs of one call, wall and CPU."""

    wall_us: float
    cpu_us: float


def _median(samples: list[tuple[int, int]]) -> Cost:
    wall = statistics.median(w for w, _ in samples) / 1000
    cpu = statistics.median(c for _, c in samples) / 1000
    return Cost(wall, cpu)


def _stamp() -> tuple[int, int]:
    return time.perf_counter_ns(), time.thread_time_ns()


def _since(start: tuple[int, int]) -> tuple[int, int]:
    wall, cpu = _stamp()
    return wall - start[0], cpu - start[1]


def measure(keys: KeyStore, level: str, size: int, rounds: int) -> tuple[Cost, Cost]:
    """(seal, open) median costs for ``rounds`` random documents of ``size`` bytes."""
    seal(os.urandom(size), level, keys, aad=AAD)  # warm the key cache
    seals, opens = [], []
    for _ in range(rounds):
        plaintext = os.urandom(size)
        start = _stamp()
        sealed = seal(plaintext, level, keys, aad=AAD)
        seals.append(_since(start))
        start = _stamp()
        opened = open_envelope(sealed, keys, aad=AAD)
        opens.append(_since(start))
        if opened != plaintext:
            raise SystemExit(f"round trip failed at level {level}")
    return _median(seals), _median(opens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="document size in bytes")
    parser.add_argument("--rounds", type=int, default=200, help="documents per level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keys = KeyStore(Path(tmp) / "keys")
        keys.ensure()
        rows = [(level, *measure(keys, level, args.size, args.rounds)) for level in LEVELS]
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{args.rounds} documents of {args.size} B per level; median µs per call")
    print(
        f"{'level':<7} {'RSA':>5} {'AES':>4} {'seal wall':>10} {'seal CPU':>9} "
        f"{'open wall':>10} {'open CPU':>9} {'open/seal CPU':>14}"
    )
    for level, sealed, opened in rows:
        print(
            f"{level:<7} {RSA_BITS[level]:>5} {DATA_KEY_BITS[level]:>4} "
            f"{sealed.wall_us:>10.0f} {sealed.cpu_us:>9.0f} "
            f"{opened.wall_us:>10.0f} {opened.cpu_us:>9.0f} {opened.cpu_us / sealed.cpu_us:>14.1f}"
        )


if __name__ == "__main__":
    main()
