"""`eblocks dashboard` opened by real headless Chromium (Debian) against a running mesh.

The page must show every block of the mesh (graph nodes and panels), the edges
between them and from the CLI, and the request counters must move with the
load without a reload (live updates over Server-Sent Events); no console
error or uncaught exception; recent traces (file exporter) are listed. A
screenshot is kept in build/artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from .cdp import Browser
from .helpers import REPO, Sandbox, make_documents, wait_for

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "build" / "artifacts"
BLOCKS = ["clean", "count", "tokenize"]
PANELS = (
    "JSON.stringify(Object.fromEntries([...document.querySelectorAll('.panel')]"
    ".map(p => [p.dataset.block, Number(p.dataset.requests)])))"
)
NODES = "JSON.stringify([...document.querySelectorAll('#graph .node')].map(n => n.dataset.block))"
EDGES = (
    "JSON.stringify([...document.querySelectorAll('#edges tbody tr')]"
    ".map(r => [r.dataset.src, r.dataset.dst]))"
)
UPDATED = "document.body.dataset.updated || ''"
TRACES = (
    "JSON.stringify([...document.querySelectorAll('#traces tbody tr[data-trace]')]"
    ".map(r => r.cells[1].textContent))"
)


def _submit(sandbox: Sandbox, folder: str, count: int, seed: int) -> None:
    (sandbox.work / folder).mkdir()
    for doc in make_documents(count, seed=seed):
        (sandbox.work / folder / doc.name).write_bytes(doc.body)
    run = sandbox.cmd("submit", "ingest", folder, "--concurrency", "4")
    assert run.returncode == 0, str(run)


async def _until(browser: Browser, expression: str, check: Any, what: str) -> Any:
    for _ in range(150):  # bounded: 30 s
        value = await browser.evaluate(expression)
        if value and check(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"the page never showed {what}; last: {value!r}")


def test_dashboard_in_headless_chromium(sandbox: Sandbox) -> None:
    spec = sandbox.copy_textpipe()
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text + "telemetry: {tracing: {sampling: 1.0, exporter: file}}\n", "utf-8")
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    _submit(sandbox, "first", 20, seed=1)
    board = sandbox.start("dashboard", "--interval", "0.5")

    def url() -> str | None:
        found = re.search(r"dashboard on (http://\S+)", sandbox.output_of(board)[0])
        return found.group(1) if found else None

    address = wait_for(url, timeout=30, what="the dashboard to print its address")
    asyncio.run(_drive(sandbox, address))


async def _drive(sandbox: Sandbox, address: str) -> None:
    async with Browser() as browser:
        await browser.goto(address)
        panels = await _until(
            browser, PANELS, lambda v: json.loads(v) == dict.fromkeys(BLOCKS, 20), "20 per block"
        )
        assert json.loads(panels) == dict.fromkeys(BLOCKS, 20)
        nodes = json.loads(await browser.evaluate(NODES))
        assert sorted(nodes) == sorted([*BLOCKS, "cli"])
        edges = {tuple(e) for e in json.loads(await browser.evaluate(EDGES))}
        assert {("cli", "clean"), ("clean", "tokenize"), ("tokenize", "count")} <= edges
        before = await browser.evaluate(UPDATED)

        await asyncio.to_thread(_submit, sandbox, "second", 15, 2)  # more load, no reload
        await _until(
            browser, PANELS, lambda v: json.loads(v) == dict.fromkeys(BLOCKS, 35), "35 per block"
        )
        assert await browser.evaluate(UPDATED) != before
        # The CLI does not trace, so each trace's root is clean's server span. Blocks export
        # their spans independently (batched): until clean's span of a trace is written, a
        # later hop's span stands as its root for a moment. The listing settles to clean.
        roots = await _until(
            browser,
            TRACES,
            lambda v: len(json.loads(v)) == 10 and set(json.loads(v)) == {"clean ingest"},
            "10 traces rooted at clean",
        )
        assert set(json.loads(roots)) == {"clean ingest"}
        rate = await browser.evaluate(
            "document.querySelector('.panel[data-block=clean] [data-field=success]').textContent"
        )
        assert rate in ("100.00%", "\N{EN DASH}")  # a dash once the window has no request
        png = await browser.screenshot()
        assert png.startswith(b"\x89PNG")
        await asyncio.to_thread(_save, png)
        assert browser.errors == []


def _save(png: bytes) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "dashboard.png").write_bytes(png)
