"""Monitoring: request metrics, sliding-window stats, access log, tap and the admin API.

The names below are imported on first use (PEP 562): the CLI reads
`eblocks.telemetry.aggregate` without loading the instance's side.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eblocks.telemetry.access_log import AccessLog
    from eblocks.telemetry.core import Hooks, Telemetry
    from eblocks.telemetry.tap import Tap

__all__ = ["AccessLog", "Hooks", "Tap", "Telemetry"]

_HOME = {
    "AccessLog": "eblocks.telemetry.access_log",
    "Hooks": "eblocks.telemetry.core",
    "Telemetry": "eblocks.telemetry.core",
    "Tap": "eblocks.telemetry.tap",
}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'eblocks.telemetry' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
