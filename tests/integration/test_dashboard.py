"""`eblocks dashboard` opened by real headless Chromium (Debian) against a running mesh.

The page must show every block of the mesh (graph nodes and panels), the edges
between them and from the CLI, and the request counters must move with the
load without a reload (live updates over Server-Sent Events); no console
error or uncaught exception; recent traces (file exporter) are listed. A
screenshot is kept in build/artifacts/.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page, expect

from .browser import TIMEOUT_MS, chromium_page
from .helpers import REPO, Sandbox, make_documents, wait_for

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "build" / "artifacts"
BLOCKS = ["clean", "count", "tokenize"]


def _submit(sandbox: Sandbox, folder: str, count: int, seed: int) -> None:
    (sandbox.work / folder).mkdir()
    for doc in make_documents(count, seed=seed):
        (sandbox.work / folder / doc.name).write_bytes(doc.body)
    run = sandbox.cmd("submit", "ingest", folder, "--concurrency", "4")
    assert run.returncode == 0, str(run)


async def _panels_at(page: Page, requests: int) -> None:
    """Wait (bounded) until there is one panel per block, each at `requests` all-time."""
    await expect(page.locator(".panel")).to_have_count(len(BLOCKS), timeout=TIMEOUT_MS)
    for block in BLOCKS:
        await expect(page.locator(f".panel[data-block={block}]")).to_have_attribute(
            "data-requests", str(requests), timeout=TIMEOUT_MS
        )


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
    async with chromium_page() as tab:
        page = tab.page
        await page.goto(address)
        await _panels_at(page, 20)
        nodes = await page.locator("#graph .node").evaluate_all(
            "nodes => nodes.map(n => n.dataset.block)"
        )
        assert sorted(nodes) == sorted([*BLOCKS, "cli"])
        edges = await page.locator("#edges tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.src, r.dataset.dst])"
        )
        assert {("cli", "clean"), ("clean", "tokenize"), ("tokenize", "count")} <= {
            tuple(e) for e in edges
        }
        before = await page.locator("body").get_attribute("data-updated")
        await page.evaluate("window.eblocksSameDocument = true")  # gone if the page reloads

        await asyncio.to_thread(_submit, sandbox, "second", 15, 2)  # more load, no reload
        await _panels_at(page, 35)
        assert await page.evaluate("window.eblocksSameDocument") is True
        assert await page.locator("body").get_attribute("data-updated") != before
        # The CLI does not trace, so each trace's root is clean's server span. Blocks export
        # their spans independently (batched): until clean's span of a trace is written, a
        # later hop's span stands as its root for a moment. The listing settles to clean.
        roots = page.locator("#traces tbody tr[data-trace] td:nth-child(2)")
        await expect(roots).to_have_text(["clean ingest"] * 10, timeout=TIMEOUT_MS)
        rate = await page.locator(".panel[data-block=clean] [data-field=success]").text_content()
        assert rate in ("100.00%", "\N{EN DASH}")  # a dash once the window has no request
        png = await page.screenshot(full_page=True)
        assert png.startswith(b"\x89PNG")
        await asyncio.to_thread(_save, png)
        assert tab.errors == []


def _save(png: bytes) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "dashboard.png").write_bytes(png)
