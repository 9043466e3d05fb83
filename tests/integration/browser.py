"""Debian's headless Chromium driven by Playwright (its bundled Node driver; no browser download).

`chromium_page` launches ``/usr/bin/chromium`` (the Debian package, installed by
``scripts/system-deps.sh``) with a fresh ephemeral context, so a throw-away
profile, and yields one page whose console errors and uncaught exceptions are
recorded in `Tab.errors`. Every Playwright wait is bounded by `TIMEOUT_MS`;
leaving the block closes the context and the browser, which ends every
Chromium process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import ConsoleMessage, Error, Page, async_playwright

__all__ = ["CHROMIUM", "TIMEOUT_MS", "Tab", "chromium_page"]

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium dials out (updates, sync), and a
# machine with no internet refuses those connections.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@dataclass
class Tab:
    """The page, and what went wrong in it: console errors and uncaught exceptions."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", self._uncaught)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            where = f"{message.location['url']}:{message.location['lineNumber']}"
            self.errors.append(f"console.{message.type}: {message.text} ({where})")

    def _uncaught(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error.stack or error.message}")


@contextlib.asynccontextmanager
async def chromium_page(*, ignore_https_errors: bool = False) -> AsyncIterator[Tab]:
    """One page of a headless Chromium, 1280x1000; everything is closed on exit."""
    if not await asyncio.to_thread(CHROMIUM.is_file):
        raise AssertionError(f"{CHROMIUM} is missing: run `bash scripts/system-deps.sh` (Debian)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, timeout=TIMEOUT_MS
        )
        async with browser:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 1000}, ignore_https_errors=ignore_https_errors
            )
            async with context:
                context.set_default_timeout(TIMEOUT_MS)
                yield Tab(await context.new_page())
