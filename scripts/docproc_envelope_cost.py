"""Median cost of seal and open_envelope per risk level, for one document size.

    .venv/bin/python scripts/docproc_envelope_cost.py [--size 4096] [--rounds 200]

A micro-figure for the case study's report, not a test: it times the two calls
in this process with ``time.perf_counter_ns`` on a key store made in a
temporary directory (keys generated first, outside the timing).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from docproc.envelope import DATA_KEY_BITS, open_envelope, seal
from docproc.keystore import LEVELS, RSA_BITS, KeyStore


def _median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def measure(keys: KeyStore, size: int, rounds: int) -> list[tuple[str, float, float]]:
    """(level, median seal µs, median open µs) for ``rounds`` documents of ``size`` bytes."""
    aad = b"bench-idempotency-key"
    rows = []
    for level in LEVELS:
        seal(os.urandom(size), level, keys, aad=aad)  # warm the key cache
        seals: list[int] = []
        opens: list[int] = []
        for _ in range(rounds):
            plaintext = os.urandom(size)
            started = time.perf_counter_ns()
            sealed = seal(plaintext, level, keys, aad=aad)
            sealed_at = time.perf_counter_ns()
            opened = open_envelope(sealed, keys, aad=aad)
            opened_at = time.perf_counter_ns()
            if opened != plaintext:
                raise SystemExit(f"round trip failed at level {level}")
            seals.append(sealed_at - started)
            opens.append(opened_at - sealed_at)
        rows.append((level, _median_us(seals), _median_us(opens)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="document size in bytes")
    parser.add_argument("--rounds", type=int, default=200, help="documents per level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keys = KeyStore(Path(tmp) / "keys")
        keys.ensure()
        rows = measure(keys, args.size, args.rounds)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{args.rounds} documents of {args.size} B per level; median µs per call")
    print(f"{'level':<7} {'RSA':>5} {'AES':>4} {'seal µs':>9} {'open µs':>9} {'open/seal':>9}")
    for level, seal_us, open_us in rows:
        print(
            f"{level:<7} {RSA_BITS[level]:>5} {DATA_KEY_BITS[level]:>4} "
            f"{seal_us:>9.0f} {open_us:>9.0f} {open_us / seal_us:>9.1f}"
        )


if __name__ == "__main__":
    main()
