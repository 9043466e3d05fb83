"""Count the instructions one request costs at each end of a hop, with valgrind's callgrind.

Timings on a shared machine move by tens of per cent from one run to the next;
instruction counts move by about 1 % (docs/benchmarks.md, decisions D62 and
D68). For each side of ``eblocks bench overhead --telemetry`` named on the
command line (``telemetry-off``, ``eblock``: metrics, ``telemetry``: metrics
and tracing at 10 %):

- server: the side's echo server (``python -m eblocks.bench.servers KIND``)
  runs under callgrind; a `MeshClient` with the same side's telemetry, outside
  valgrind, sends a warm-up and then ``--requests`` requests (4 KB, 32 in
  flight); the counters are zeroed before and dumped after the counted
  requests (``callgrind_control``): the server's instructions per request;
- client: that client runs under callgrind twice, with ``--requests`` and
  five times as many, against the side's server outside valgrind; the
  difference over the extra requests cancels start-up and warm-up.

    python scripts/count_instructions.py telemetry-off,eblock,telemetry

Needs valgrind (Debian: ``apt-get install valgrind``); a run takes a few
minutes per side. Not part of ``make test``: a measurement, not a check.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from eblocks.bench.overhead import _eblock_caller
from eblocks.bench.telemetry import SIDES

SIZE = 4096
CONCURRENCY = 32
WARM_UP = 1000


async def _drive(port: int, kind: str, requests: int) -> None:
    """``requests`` calls, ``CONCURRENCY`` in flight, as the benchmark's client makes them."""
    async with _eblock_caller("127.0.0.1", port, kind=kind) as call:
        body = b"x" * SIZE
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                if await call(body) != body:
                    raise SystemExit("echo mismatch")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _run(port: int, kind: str, requests: int) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_drive(port, kind, requests))
    else:
        uvloop.run(_drive(port, kind, requests))


def _summary(path: Path) -> int:
    """The total instructions of a callgrind output file."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"{path}: no summary line (did callgrind finish?)")


def _server(kind: str, *, valgrind: Path | None) -> tuple[subprocess.Popen[str], int]:
    """Start the side's echo server (under callgrind, writing to ``valgrind``); its port."""
    command = [sys.executable, "-m", "eblocks.bench.servers", kind]
    if valgrind is not None:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind}", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    words = proc.stdout.readline().split()  # "PORT <n> <loop>", or nothing if it failed
    if len(words) != 3 or words[0] != "PORT":
        proc.kill()
        raise SystemExit(f"the {kind} server did not start: {words}")
    return proc, int(words[1])


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)  # callgrind writes its file on the way out
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _control(action: str, pid: int) -> None:
    """``callgrind_control --zero`` or ``--dump`` the callgrind run ``pid``."""
    command = ["callgrind_control", f"--{action}", str(pid)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def server_cost(kind: str, requests: int, folder: Path) -> int:
    proc, port = _server(kind, valgrind=folder / f"server-{kind}.%p")
    try:
        _run(port, kind, WARM_UP)
        _control("zero", proc.pid)
        _run(port, kind, requests)
        _control("dump", proc.pid)
    finally:
        _stop(proc)
    # the dump callgrind_control asked for: the out file's name (%p: the pid) and ".1"
    return _summary(folder / f"server-{kind}.{proc.pid}.1") // requests


def client_cost(kind: str, requests: int, folder: Path) -> int:
    proc, port = _server(kind, valgrind=None)
    totals = []
    try:
        for n in (requests, 5 * requests):
            out = folder / f"client-{kind}-{n}.out"
            command = [sys.executable, __file__, "--client-run", kind, str(port), str(n)]
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                check=True,
                stderr=subprocess.DEVNULL,
                timeout=1800,
            )
            totals.append(_summary(out))
    finally:
        _stop(proc)
    return (totals[1] - totals[0]) // (4 * requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("sides", nargs="?", default="telemetry-off,eblock,telemetry")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--client-run", nargs=3, metavar=("KIND", "PORT", "N"), help="internal")
    args = parser.parse_args(argv)
    if args.client_run is not None:  # the client process callgrind watches
        kind, port, n = args.client_run
        _run(int(port), kind, int(n))
        return 0
    sides = args.sides.split(",")
    for kind in sides:
        if kind not in ("eblock", *SIDES):
            raise SystemExit(f"unknown side {kind!r}: eblock, {', '.join(SIDES)}")
    with tempfile.TemporaryDirectory(prefix="eblocks-instructions-") as tmp:
        print(f"{'side':<16}{'server':>12}{'client':>12}   instructions per request")
        for kind in sides:
            server = server_cost(kind, args.requests, Path(tmp))
            client = client_cost(kind, args.requests, Path(tmp))
            print(f"{kind:<16}{server:>12,}{client:>12,}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
