"""`eblocks bench patterns` as a short smoke run: it runs, writes its results, leaves nothing.

No timing is asserted; the numbers of a 0.3 s run on a shared machine mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

CONFIGS = ["pipeline", "manager-worker x1", "manager-worker x2", "divide-conquer x2 (2 parts)"]


def _processes_marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("EBLOCKS_BENCH_SMOKE") == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_patterns_smoke_run_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex  # inherited by the mesh's processes, to find any left behind
    env = {**os.environ, "EBLOCKS_BENCH_SMOKE": marker}
    args = ["bench", "patterns", "--duration", "0.3", "--warmup", "0.05", "--rounds", "1"]
    args += ["--work-ms", "2", "--concurrency", "4", "--parts", "2", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "eblocks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _processes_marked(marker) == []

    report = json.loads((tmp_path / "patterns.json").read_text())
    assert report["benchmark"] == "patterns"
    assert report["errors"] == 0
    assert report["settings"]["workers"] == [1, 2]
    assert report["calibration"]["iters"] > 0
    assert report["calibration"]["cpu_per_task_s"] > 0
    assert [c["name"] for c in report["configs"]] == CONFIGS
    assert sorted(s["config"] for s in report["rounds"]) == sorted(CONFIGS)
    for config in report["configs"]:
        assert config["tasks"] > 0
        assert config["throughput"] > 0
        assert config["ideal"] > 0
        assert config["efficiency"] > 0
    assert report["configs"][0]["ratio"] == 1.0  # the pipeline against itself
    (reaction,) = report["reactions"]
    assert reaction["observed_s"] > 0
    assert report["reaction_s"] == reaction["observed_s"]

    markdown = (tmp_path / "patterns.md").read_text()
    assert "| manager-worker x2 | 2 |" in markdown
    assert "Scale-up reaction" in markdown
    assert (tmp_path / "patterns.png").read_bytes().startswith(b"\x89PNG")
