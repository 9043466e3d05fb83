"""HTTP/1.1 transport: pooled keep-alive connections through aiohttp.

The innermost `Send` of the client stack. aiohttp's exceptions are translated
here, at the boundary, into the mesh error tree.
"""

from __future__ import annotations

import ssl as _ssl
from types import TracebackType

import aiohttp

from eblocks._types import Call, Clock, SystemClock
from eblocks.errors import ConnectError, MeshError, MeshTimeoutError
from eblocks.message import DEADLINE_HEADER, Message
from eblocks.respond import error_from_response

__all__ = ["HttpTransport"]


class HttpTransport:
    """Sends calls to ``http://<endpoint>/`` over a shared connection pool."""

    def __init__(
        self,
        *,
        limit: int = 256,
        keepalive: float = 30.0,
        clock: Clock | None = None,
        ssl: _ssl.SSLContext | None = None,
        plain_targets: frozenset[str] = frozenset(),
    ) -> None:
        self._ssl = ssl
        self._plain = plain_targets
        self._limit = limit
        self._keepalive = keepalive
        self._clock = clock or SystemClock()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=self._keepalive, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, call: Call) -> Message:
        endpoint = call.endpoint
        if endpoint is None:
            raise ConnectError(f"no endpoint chosen for {call.target!r}")
        headers = dict(call.message.headers)
        if call.deadline is not None:
            remaining_ms = max(1, int((call.deadline - self._clock.monotonic()) * 1000))
            headers[DEADLINE_HEADER] = str(remaining_ms)
        ssl: _ssl.SSLContext | bool = True
        if self._ssl is not None and call.target not in self._plain:
            url, ssl = f"https://{endpoint.host}:{endpoint.port}/", self._ssl
        else:
            url = f"http://{endpoint.host}:{endpoint.port}/"
        try:
            async with self._open().post(
                url, data=call.message.body, headers=headers, ssl=ssl
            ) as resp:
                body = await resp.read()
                if resp.status >= 300:
                    raise error_from_response(resp.status, resp.headers, body, call.target)
                return Message.from_wire(body, resp.headers)
        except MeshError:
            raise
        except aiohttp.ClientSSLError as exc:
            raise ConnectError(
                f"TLS handshake with {call.target!r} at {endpoint.address} failed: {exc}",
                detail={"target": call.target, "endpoint": endpoint.address, "tls": True},
            ) from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise ConnectError(
                f"cannot reach {call.target!r} at {endpoint.address}: {exc.__class__.__name__}",
                detail={"target": call.target, "endpoint": endpoint.address},
            ) from exc
        except TimeoutError as exc:
            raise MeshTimeoutError(f"{call.target!r} at {endpoint.address} timed out") from exc
