"""Which headers cross the proxy, in each direction (pure).

Hop-by-hop headers (RFC 9110 §7.6.1, plus those a ``Connection`` header
names) belong to one connection and are never forwarded; aiohttp writes its
own framing (``Content-Length`` or chunked) on each side. Toward the app the
proxy also drops what only the mesh may say — the request token it has
verified, and any ``x-eblocks-peer`` a caller forged — and says who called:
``x-eblocks-peer`` carries the caller's verified SPIFFE ID (Envoy's XFCC, in one
value), ``x-forwarded-for`` / ``x-forwarded-proto`` the connection it came on.
"""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from eblocks.message import DEADLINE_HEADER, METHOD_HEADER, PATH_HEADER, TOKEN_HEADER

__all__ = ["HOP_BY_HOP", "PEER_HEADER", "deadline_of", "to_app", "to_caller"]

PEER_HEADER = "x-eblocks-peer"
"""The caller's verified identity, set by the proxy for the app (never trusted inbound)."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# ``expect``: aiohttp's server has answered any 100-continue already
_MESH_ONLY = frozenset({TOKEN_HEADER, PEER_HEADER, PATH_HEADER, METHOD_HEADER, "expect"})
_WEBSOCKET = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
    }
)


def _dropped(headers: Mapping[str, str]) -> frozenset[str]:
    named = {
        token.strip().lower()
        for value in _all(headers, "connection")
        for token in value.split(",")
        if token.strip()
    }
    return HOP_BY_HOP | named


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        return list(headers.getall(name, []))
    value = headers.get(name)
    return [value] if value is not None else []


def to_app(
    headers: CIMultiDictProxy[str] | CIMultiDict[str],
    *,
    peer: str | None,
    remote: str | None,
    scheme: str,
    websocket: bool = False,
) -> CIMultiDict[str]:
    """The headers the app receives for a request that came with ``headers``."""
    drop = _dropped(headers) | _MESH_ONLY | (_WEBSOCKET if websocket else frozenset())
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in drop:
            out.add(name, value)
    if peer is not None:
        out[PEER_HEADER] = peer
    if remote:
        prior = out.get("x-forwarded-for")
        out["x-forwarded-for"] = f"{prior}, {remote}" if prior else remote
    out["x-forwarded-proto"] = scheme
    return out


def to_caller(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The app's response headers as the caller receives them (framing left to aiohttp)."""
    drop = _dropped(headers) | {"content-length"}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in drop:
            out.add(name, value)
    return out


def deadline_of(headers: Mapping[str, str]) -> float | None:
    """Seconds the caller still waits (``x-eblocks-timeout-ms``), if it said so."""
    raw = headers.get(DEADLINE_HEADER)
    if raw is None:
        return None
    try:
        return max(0.001, int(raw) / 1000)
    except ValueError:
        return None
