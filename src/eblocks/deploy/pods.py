"""Pieces every rendered pod shares: security contexts and downward-API variables."""

from __future__ import annotations

from typing import Any

from eblocks.deploy.names import ADMIN_PORT, HTTP_PORT, RUN_AS, SPEC_FILE, STATE_DIR

__all__ = ["ADMIN_ANY", "container_security", "field_env", "instance_args", "pod_security"]

ADMIN_ANY = ["--admin-host", "*"]
"""An instance's admin port on every address of its pod (or container): the pod IP, for
probes, scrapes and peers, and loopback, for ``kubectl port-forward`` (the PM stays on
the pod IP). Not for the sidecar proxy, whose admin port follows ``--host``."""


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


def instance_args(block: str, state_flag: str = "--state-dir") -> list[str]:
    """The arguments of ``python -m eblocks.runtime.instance`` in a pod ($(VAR) from env).

    The sidecar proxy takes the same ones, its state dir named by ``--mesh-state``.
    """
    return [
        "--spec",
        SPEC_FILE,
        state_flag,
        STATE_DIR,
        "--block",
        block,
        "--instance",
        "$(POD_NAME)",
        "--host",
        "$(POD_IP)",
        "--port",
        str(HTTP_PORT),
        "--admin-port",
        str(ADMIN_PORT),
    ]
