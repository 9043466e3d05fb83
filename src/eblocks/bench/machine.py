"""What machine a benchmark ran on: every results file records it next to the figures."""

from __future__ import annotations

import os
import platform
from importlib import metadata

__all__ = ["describe"]


def describe(**extra: object) -> dict[str, object]:
    """Platform, Python, CPU model and count, load average, library versions, + ``extra``."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        **extra,
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "eblocks": _version("eblocks"),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
