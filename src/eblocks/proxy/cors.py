"""CORS as the Fetch standard defines it, as pure functions over headers.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
is answered by the gateway itself, never sent into the mesh. An allowed
origin's actual request gets ``Access-Control-Allow-Origin`` (and the exposed
headers) on its response, errors included, so a browser script can read the
mesh's ``x-eblocks-error``. A refused origin gets no CORS headers at all:
the browser then withholds the response, which is how CORS refuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from eblocks.spec.gateway import Cors

__all__ = ["is_preflight", "preflight_headers", "response_headers"]


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return (
        method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers
    )


def _allowed_origin(cors: Cors, origin: str | None) -> str | None:
    """The value of Access-Control-Allow-Origin for ``origin``, or None if refused."""
    if origin is None:
        return None
    if "*" in cors.allow_origins and not cors.allow_credentials:
        return "*"
    return origin if origin in cors.allow_origins else None


def preflight_headers(cors: Cors, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers answering a preflight (empty: refused). ``headers`` are lower-case."""
    allowed = _allowed_origin(cors, headers.get("origin"))
    if allowed is None:
        return {}
    method = headers.get("access-control-request-method", "").upper()
    if method not in cors.allow_methods:
        return {}
    asked = [
        h.strip().lower()
        for h in headers.get("access-control-request-headers", "").split(",")
        if h.strip()
    ]
    if any(h not in cors.allow_headers for h in asked):
        return {}
    out = {
        "access-control-allow-origin": allowed,
        "access-control-allow-methods": ", ".join(cors.allow_methods),
        "access-control-max-age": str(int(cors.max_age)),
        "vary": "Origin",
    }
    if cors.allow_headers:
        out["access-control-allow-headers"] = ", ".join(cors.allow_headers)
    if cors.allow_credentials:
        out["access-control-allow-credentials"] = "true"
    return out


def response_headers(cors: Cors, origin: str | None) -> dict[str, str]:
    """The CORS headers of an actual response to a request from ``origin``."""
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return {}
    out = {"access-control-allow-origin": allowed, "vary": "Origin"}
    if cors.expose_headers:
        out["access-control-expose-headers"] = ", ".join(cors.expose_headers)
    if cors.allow_credentials:
        out["access-control-allow-credentials"] = "true"
    return out
