"""The egress gateway: blocks call external hosts through it, and only those it allows.

A block asks for an external request with an ordinary mesh call::

    await ctx.call("outbound", Message(body, {
        "x-eblocks-egress-url": "https://api.example.com/v1/rates?day=today",
        "x-eblocks-egress-method": "GET",          # default POST
    }))

The gateway checks the URL's scheme, host and port against its allow-list
(refused: 403 ``forbidden``, rule ``egress``), connects as the matching entry
says (TLS verified with the entry's CA bundle or the system's, a client
certificate when the entry has one: mTLS origination) and answers with the
external body and end-to-end headers plus ``x-eblocks-egress-status``. A 4xx or
5xx answer becomes an ``upstream`` error with that status (so retries,
budgets and breakers treat an external failure like any other); no connection
is ``connect``; no answer within ``timeout`` is ``timeout``. Every request is
counted per host in the instance's outbound series: ``eblocks_requests_total``
with ``dst_block`` = ``host:port``, ``route`` = ``egress``.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from eblocks.block.context import Context
from eblocks.errors import (
    BadRequestError,
    ConnectError,
    ForbiddenError,
    MeshTimeoutError,
    PayloadTooLargeError,
    SecurityError,
    UpstreamError,
)
from eblocks.message import Message
from eblocks.spec.gateway import EgressGateway, EgressHost
from eblocks.telemetry.core import Telemetry

__all__ = [
    "EGRESS_METHOD_HEADER",
    "EGRESS_STATUS_HEADER",
    "EGRESS_URL_HEADER",
    "Egress",
]

EGRESS_URL_HEADER = "x-eblocks-egress-url"
EGRESS_METHOD_HEADER = "x-eblocks-egress-method"
EGRESS_STATUS_HEADER = "x-eblocks-egress-status"

_HOP = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade"}
)


class Egress:
    """The PM of an egress gateway block: ``await egress(msg, ctx)``; close with `aclose`."""

    def __init__(
        self,
        block: str,
        gateway: EgressGateway,
        *,
        spec_dir: Path,
        max_body: int,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.block = block
        self.gateway = gateway
        self._dir = spec_dir
        self._max_body = max_body
        self._telemetry = telemetry
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        # made now, so a missing or bad file stops the block at start, named, not a call later
        self._tls = {i: _client_tls(block, i, e, spec_dir) for i, e in enumerate(gateway.allow)}

    def allowed(self, url: str) -> tuple[EgressHost, str, int, str]:
        """The allow-list entry admitting ``url`` and its scheme, host and port (pure)."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if scheme not in ("http", "https") or not host:
            raise BadRequestError(
                f"{EGRESS_URL_HEADER} must be an absolute http(s) URL, got {url!r}"
            )
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise BadRequestError(f"{EGRESS_URL_HEADER} has a bad port: {url!r}") from None
        for entry in self.gateway.allow:
            if entry.admits(host, port, scheme):
                return entry, scheme, port, host
        raise ForbiddenError(
            f"egress gateway {self.block!r} does not allow {scheme}://{host}:{port}",
            detail={"rule": "egress", "host": host, "port": port},
        )

    async def __call__(self, msg: Message, ctx: Context) -> Message:
        url = msg.headers.get(EGRESS_URL_HEADER)
        if not url:
            raise BadRequestError(f"an egress request needs the {EGRESS_URL_HEADER} header")
        method = (msg.headers.get(EGRESS_METHOD_HEADER) or "POST").upper()
        entry, _scheme, port, host = self.allowed(url)
        index = self.gateway.allow.index(entry)
        headers = {
            k: v for k, v in msg.headers.items() if not k.startswith("x-eblocks-") and k not in _HOP
        }
        series = (
            self._telemetry.outbound.get(f"{host}:{port}", "egress") if self._telemetry else None
        )
        clock = self._telemetry.clock if self._telemetry else None
        started = clock.monotonic() if clock else 0.0
        status = 0
        try:
            status, body, answer = await self._send(index, entry, method, url, headers, msg.body)
        except BaseException as exc:
            status = getattr(exc, "status", 0)  # a timeout is counted as the 504 it answers
            if series is not None:
                series.error(getattr(exc, "reason", "internal"))
            raise
        finally:
            if series is not None and clock is not None:
                now = clock.monotonic()
                series.add(status or 502, now - started, len(msg.body), 0, now)
        if status >= 400:
            raise UpstreamError(
                f"{method} {url} answered {status}",
                status=status,
                reason="upstream",
                origin=self.block,
                detail={"url": url, "status": status, "body": body[:1024].decode(errors="replace")},
            )
        return Message(body, {**answer, EGRESS_STATUS_HEADER: str(status)})

    async def _send(
        self,
        index: int,
        entry: EgressHost,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, bytes, dict[str, str]]:
        session = self._session(index, entry)
        try:
            async with asyncio.timeout(self.gateway.timeout):
                async with session.request(
                    method, url, data=body or None, headers=headers, allow_redirects=False
                ) as response:
                    chunks, size = [], 0
                    async for chunk in response.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > self._max_body:
                            raise PayloadTooLargeError(
                                f"{url} answered more than {self._max_body} bytes",
                                detail={"max_body": self._max_body},
                            )
                        chunks.append(chunk)
                    data = b"".join(chunks)
                    answer = {
                        k.lower(): v for k, v in response.headers.items() if k.lower() not in _HOP
                    }
                    return response.status, data, answer
        except TimeoutError:
            raise MeshTimeoutError(
                f"{url} did not answer within {self.gateway.timeout:g}s", detail={"url": url}
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            where = f"blocks.{self.block}.gateway.allow[{index}]"
            raise ConnectError(
                f"{method} {url}: the server's certificate does not verify against "
                f"{where}.ca_file (or the system's CAs when it sets none): {exc}",
                detail={"url": url},
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConnectError(f"{method} {url}: {exc}", detail={"url": url}) from exc

    def _session(self, index: int, entry: EgressHost) -> aiohttp.ClientSession:
        session = self._sessions.get(index)
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._tls[index], limit=256),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # callers never share cookies
            )
            self._sessions[index] = session
        return session

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()


def _client_tls(block: str, index: int, entry: EgressHost, spec_dir: Path) -> ssl.SSLContext | bool:
    """The TLS context of calls to allow-list entry ``index`` (False: plain HTTP)."""
    if entry.scheme != "https":
        return False
    where = f"blocks.{block}.gateway.allow[{index}]"
    cafile = spec_dir / entry.ca_file if entry.ca_file else None
    try:
        tls = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise SecurityError(f"{where}.ca_file: cannot load {cafile}: {exc}") from exc
    if entry.client_cert and entry.client_key:
        cert, key = spec_dir / entry.client_cert, spec_dir / entry.client_key
        load_cert_pair(tls, cert, key, f"{where}.client_cert")
    return tls


def load_cert_pair(tls: ssl.SSLContext, cert: Path, key: Path, where: str) -> None:
    """Load a gateway's certificate and key into ``tls``; SecurityError naming ``where``."""
    try:
        tls.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SecurityError(
            f"{where}: cannot load certificate {cert} with key {key}: {exc}"
        ) from exc
