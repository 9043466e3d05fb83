"""Pieces every rendered pod shares: security contexts and downward-API variables."""

from __future__ import annotations

from typing import Any

from eblocks.deploy.names import RUN_AS

__all__ = ["container_security", "field_env", "pod_security"]


def pod_security() -> dict[str, Any]:
    """Non-root with the runtime's seccomp profile: the "restricted" Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def field_env(name: str, path: str) -> dict[str, Any]:
    """An environment variable from the downward API (``metadata.name``, ``status.podIP``)."""
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
