"""The app process a proxy launched (``eblocks proxy ... -- CMD ARGS``) and its port.

The proxy owns the app's life, so the ordering problems of other meshes'
sidecars do not arise::

    upstream ports open --> app started --> app's port accepts (bounded wait)
      --> proxy PM and admin serve (/readyz 200) --> traffic
    app exits(code) --> proxy drains --> proxy exits(code)        (the Jobs problem)
    SIGTERM --> proxy unready, drains --> SIGTERM to the app --> exits

The app runs in its own session, so a terminal's Ctrl-C reaches the proxy
alone and the proxy decides when the app stops; on Linux the app also gets
SIGTERM if the proxy dies without stopping it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
import time
from collections.abc import Mapping, Sequence

from eblocks.errors import AppStartError

__all__ = ["AppProcess", "wait_for_port"]

log = logging.getLogger("eblocks.sidecar")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class AppProcess:
    """One child process: started, awaited, stopped (SIGTERM, then SIGKILL after ``grace``)."""

    def __init__(
        self,
        block: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
    ) -> None:
        if not command:
            raise ValueError("the app's command is empty")
        self.block = block
        self.command = tuple(command)
        self._env = dict(env)
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    async def start(self) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as exc:
            raise AppStartError(
                f"block {self.block!r}: cannot run the app {self.command[0]!r}: {exc}"
            ) from exc
        log.info("started the app (pid %d): %s", self._proc.pid, " ".join(self.command))

    async def wait(self) -> int:
        assert self._proc is not None, "start() first"
        return await self._proc.wait()

    async def stop(self, grace: float) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; the return code."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning("the app did not stop within %.1fs: SIGKILL", grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        return await proc.wait()


async def wait_for_port(
    block: str,
    host: str,
    port: int,
    bound: float,
    *,
    app: AppProcess | None = None,
    interval: float = 0.05,
) -> None:
    """Return once ``host:port`` accepts a connection; `AppStartError` after ``bound``.

    Gives up at once when ``app`` exits meanwhile (the error names its code).
    """
    began = time.monotonic()
    last = "nothing listening"

    def failed(why: str) -> AppStartError:
        return AppStartError(
            f"block {block!r}: the app did not accept connections on {host}:{port} "
            f"within {bound:g}s ({why})"
        )

    while True:
        if app is not None and app.returncode is not None:
            raise failed(f"it exited with {app.returncode} first")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), interval * 20)
        except (OSError, TimeoutError) as exc:
            last = type(exc).__name__ if not str(exc) else str(exc)
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        if time.monotonic() - began >= bound:
            raise failed(last)
        await asyncio.sleep(interval)
