"""Monitoring: request metrics, sliding-window stats, access log, tap and the admin API.

The names below are imported on first use (PEP 562): the CLI reads
`eblocks.telemetry.aggregate` without loading the instance's side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eblocks._lazy import lazy_exports

if TYPE_CHECKING:
    from eblocks.telemetry.access_log import AccessLog
    from eblocks.telemetry.core import Hooks, Telemetry
    from eblocks.telemetry.tap import Tap

__all__ = ["AccessLog", "Hooks", "Tap", "Telemetry"]

_HOME = {
    "AccessLog": "access_log",
    "Hooks": "core",
    "Telemetry": "core",
    "Tap": "tap",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
