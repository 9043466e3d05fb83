"""Monitoring: request metrics, sliding-window stats, access log, tap and the admin API."""

from eblocks.telemetry.access_log import AccessLog
from eblocks.telemetry.core import Hooks, Telemetry
from eblocks.telemetry.tap import Tap

__all__ = ["AccessLog", "Hooks", "Tap", "Telemetry"]
