"""The monitoring half of the admin port: ``/metrics``, ``/v1/stats``, ``/v1/config``, ``/v1/tap``.

(``/healthz``, ``/readyz`` belong to the block, ``/v1/members`` to discovery.)
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from eblocks.telemetry.core import Telemetry
from eblocks.telemetry.metrics import metrics_handler, registry_for

__all__ = ["REDACTED", "add_admin_routes", "effective_config", "redact"]

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"(?i)(key|secret|token|password|passwd|credential|auth)")
_MAX_WINDOW = 60


def add_admin_routes(app: web.Application, tel: Telemetry) -> None:
    """Serve the monitoring API of ``tel`` on ``app`` (the admin application)."""
    app.router.add_get("/metrics", metrics_handler(registry_for(tel)))

    async def stats(request: web.Request) -> web.Response:
        try:
            windows = tuple(
                int(w.removesuffix("s")) for w in request.query.get("windows", "10s,60s").split(",")
            )
        except ValueError:
            raise web.HTTPBadRequest(text="windows: seconds, comma-separated (10s,60s)") from None
        if not windows or not all(1 <= w <= _MAX_WINDOW for w in windows):
            raise web.HTTPBadRequest(text=f"windows: each between 1s and {_MAX_WINDOW}s")
        return _json(tel.stats(windows))

    async def config(_: web.Request) -> web.Response:
        return _json(effective_config(tel))

    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/v1/config", config)
    app.router.add_get("/v1/tap", tel.tap.stream)


def _json(body: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), content_type="application/json"
    )


def effective_config(tel: Telemetry) -> dict[str, Any]:
    """This instance's effective settings and the mesh spec it runs, secrets redacted."""
    body: dict[str, Any] = {"block": tel.block, "instance": tel.instance}
    if tel.settings is not None:
        body["settings"] = {
            f.name: _plain(getattr(tel.settings, f.name)) for f in dataclasses.fields(tel.settings)
        }
    if tel.spec is not None:
        body["spec"] = redact(tel.spec.model_dump(mode="json", by_alias=True))
    if tel.policies is not None:
        current = tel.policies.current  # what `eblocks apply` put in force, not the file's
        body["policies"] = {"version": current.version, "digest": current.digest}
        if "spec" in body:
            body["spec"]["policies"] = current.policies.model_dump(mode="json", by_alias=True)
    body["telemetry"] = {
        "access_log": str(tel.access_log.path) if tel.access_log is not None else None,
    }
    return body


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def redact(value: Any, name: str = "") -> Any:
    """``value`` with every string under a secret-looking key replaced (keys, tokens, ...)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, name) for v in value]
    if isinstance(value, str) and name and _SECRET_NAME.search(name):
        return REDACTED
    return value
