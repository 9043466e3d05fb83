"""`eblocks bench overhead` as a short smoke run: it runs, writes its results, leaves nothing.

No timing is asserted; the numbers of a 0.2 s run on a shared machine mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = pytest.mark.integration

SIDE_KEYS = {"rps", "p50_ms", "p99_ms", "client_cpu_us", "server_cpu_us", "requests", "errors"}


def _processes_marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("EBLOCKS_BENCH_SMOKE") == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_overhead_smoke_run_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex  # inherited by the server processes, to find any left behind
    env = {**os.environ, "EBLOCKS_BENCH_SMOKE": marker}
    args = ["bench", "overhead", "--duration", "0.2", "--warmup", "0.05", "--rounds", "1"]
    args += ["--sizes", "4KiB", "--concurrency", "2", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "eblocks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _processes_marked(marker) == []

    report = json.loads((tmp_path / "overhead.json").read_text())
    assert report["benchmark"] == "overhead"
    assert report["errors"] == 0
    assert report["settings"]["sizes"] == [4096]
    assert report["settings"]["concurrency"] == [2]
    assert {"python", "cpus", "aiohttp", "client_loop"} <= report["machine"].keys()

    assert [(s["kind"], s["size"], s["concurrency"]) for s in report["rounds"]] in (
        [("bare", 4096, 2), ("eblock", 4096, 2)],
        [("eblock", 4096, 2), ("bare", 4096, 2)],
    )
    for sample in report["rounds"]:
        assert sample["requests"] > 0
        assert sample["warmup_requests"] > 0
        assert sample["errors"] == 0

    (cell,) = report["cells"]
    for side in ("bare", "eblock"):
        assert set(cell[side]) == SIDE_KEYS
        assert cell[side]["requests"] > 0
        assert cell[side]["rps"] > 0
    assert cell["rps_ratio"] > 0

    markdown = (tmp_path / "overhead.md").read_text()
    assert "| 4 KB | 2 |" in markdown
    assert (tmp_path / "overhead.png").read_bytes().startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One run with every optional side (`--security --policies --sidecar --telemetry`): the
    report and the Markdown; each test below checks its own sides in it."""
    out = tmp_path_factory.mktemp("sides")
    marker = uuid.uuid4().hex
    env = {**os.environ, "EBLOCKS_BENCH_SMOKE": marker}
    args = ["bench", "overhead", "--security", "--policies", "--sidecar", "--telemetry"]
    args += ["--duration", "0.2", "--warmup", "0.05", "--rounds", "1"]
    args += ["--sizes", "4KiB", "--concurrency", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "eblocks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _processes_marked(marker) == []  # servers, both proxies and both nginx stopped
    name = "overhead-security-policies-sidecar-telemetry"
    report = json.loads((out / f"{name}.json").read_text())
    assert report["errors"] == 0
    kinds = sorted(s["kind"] for s in report["rounds"])
    assert kinds == [
        "bare", "eblock", "mtls", "nginx-pair", "policies", "secure", "sidecar-pair",
        "telemetry", "telemetry-off",
    ]  # fmt: skip
    assert all(s["requests"] > 0 and s["errors"] == 0 for s in report["rounds"])
    return report, (out / f"{name}.md").read_text()


def test_overhead_security_smoke_run(sides: tuple[dict[str, Any], str]) -> None:
    """`--security` adds the mtls and secure sides; every request succeeds through them."""
    report, markdown = sides
    cells = report["security_cells"]
    assert [c["side"] for c in cells] == ["mtls", "secure"]
    assert all(c["secure"].keys() >= SIDE_KEYS for c in cells)
    assert {t["name"] for t in report["targets"]} >= {"mtls added p50 ms", "secure added p50 ms"}
    assert "## Security" in markdown


def test_overhead_policies_smoke_run(sides: tuple[dict[str, Any], str]) -> None:
    """`--policies` adds a side with every policy configured; none refuses a request."""
    report, markdown = sides
    assert report["settings"]["policies"] is True
    (cell,) = report["policy_cells"]
    assert (cell["size"], cell["concurrency"]) == (4096, 1)
    assert set(cell["none"]) == SIDE_KEYS
    assert set(cell["policies"]) == SIDE_KEYS
    assert cell["policies"]["requests"] > 0
    assert cell["rps_ratio"] > 0
    assert {t["name"] for t in report["targets"]} >= {"policies added p50 ms"}
    layers = report["policy_layers"]
    assert set(layers["us_per_call"]) == {"no layers", "no rules", "every rule"}
    assert all(value > 0 for value in layers["us_per_call"].values())
    assert set(layers["added_us"]) == {"no rules", "every rule"}
    client = report["policy_client_layers"]
    assert set(client["us_per_call"]) == {"no policies", "every rule"}
    assert all(value > 0 for value in client["us_per_call"].values())
    assert "Client policy layers alone" in markdown
    assert "## Policies: every layer configured, none triggering" in markdown
    assert "| every rule |" in markdown


def test_overhead_sidecar_smoke_run(sides: tuple[dict[str, Any], str]) -> None:
    """`--sidecar`: direct, in process, a pair of `eblocks proxy`, a pair of nginx; all answer."""
    report, markdown = sides
    cells = {c["side"]: c for c in report["sidecar_cells"]}
    assert set(cells) == {"sidecar-pair", "nginx-pair"}
    for cell in cells.values():
        assert cell["plain"].keys() >= SIDE_KEYS
        assert cell["secure"]["requests"] > 0
        assert cell["rps_ratio"] > 0
    table = markdown.split("## Sidecars", 1)[1]
    for side in ("direct", "eblock (in process)", "sidecar-pair", "nginx-pair"):
        assert f"| 4 KB | 1 | {side} |" in table


def test_overhead_telemetry_smoke_run(sides: tuple[dict[str, Any], str]) -> None:
    """`--telemetry`: metrics (the eblock side) and metrics + tracing 10 % against telemetry off."""
    report, markdown = sides
    assert report["settings"]["telemetry"] is True
    cells = {c["side"]: c for c in report["telemetry_cells"]}
    assert set(cells) == {"eblock", "telemetry"}
    for cell in cells.values():
        assert (cell["size"], cell["concurrency"]) == (4096, 1)
        assert cell["plain"].keys() >= SIDE_KEYS
        assert cell["plain"]["requests"] > 0
        assert cell["secure"]["requests"] > 0
        assert cell["rps_ratio"] > 0
    assert {t["name"] for t in report["targets"]} >= {"telemetry added p50 ms"}
    table = markdown.split("## Telemetry", 1)[1]
    for side in ("metrics", "metrics + tracing 10%"):
        assert f"| {side} | 4 KB | 1 |" in table
