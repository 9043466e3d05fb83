"""WebSocket upgrades through the proxy: two sockets, two pumps.

The proxy opens the app's WebSocket first (so an app that refuses gives the
caller a mesh error, not a half-made upgrade), then accepts the caller's with
the subprotocol the app chose, and copies messages both ways::

    caller ws --text/binary/ping--> app ws      (pump: caller -> app)
    caller ws <--text/binary/ping-- app ws      (pump: app -> caller)
    either side closes --> the other is closed with the same code

Frames are relayed as messages (aiohttp reassembles fragments); no size
limit is imposed beyond the app's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import aiohttp
from aiohttp import WSMsgType, web

from eblocks.errors import ConnectError
from eblocks.sidecar.headers import to_app

__all__ = ["is_upgrade", "relay"]


def is_upgrade(headers: Mapping[str, str]) -> bool:
    """Whether a request asks to become a WebSocket."""
    connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    return headers.get("upgrade", "").lower() == "websocket" and "upgrade" in connection


async def relay(
    request: web.Request, session: aiohttp.ClientSession, base: str, peer: str | None
) -> web.StreamResponse:
    """Connect to the app's WebSocket at the same path, accept the caller's, pump both."""
    offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",")]
    headers = to_app(
        request.headers, peer=peer, remote=request.remote, scheme="http", websocket=True
    )
    headers.popall("sec-websocket-protocol", None)
    try:
        upstream = await session.ws_connect(
            base + request.raw_path,
            headers=headers,
            protocols=[p for p in offered if p],
            autoping=False,
            max_msg_size=0,
        )
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectError(
            f"the app at {base} refused the WebSocket upgrade: {exc}", detail={"app": base}
        ) from exc
    try:
        caller = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            autoping=False,
            max_msg_size=0,
        )
        await caller.prepare(request)
        await _pump_both(caller, upstream)
        return caller
    finally:
        await upstream.close()


async def _pump_both(caller: web.WebSocketResponse, app: aiohttp.ClientWebSocketResponse) -> None:
    tasks = [
        asyncio.create_task(_pump(caller, app)),
        asyncio.create_task(_pump(app, caller)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    code = app.close_code or caller.close_code or aiohttp.WSCloseCode.OK
    with contextlib.suppress(ConnectionError):
        await caller.close(code=code)
        await app.close(code=code)


_Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(source: _Socket, sink: _Socket) -> None:
    """Copy messages from ``source`` to ``sink`` until ``source`` closes."""
    async for msg in source:
        if msg.type is WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        elif msg.type is WSMsgType.PING:
            await sink.ping(msg.data)
        elif msg.type is WSMsgType.PONG:
            await sink.pong(msg.data)
        else:  # CLOSE, CLOSING, CLOSED, ERROR: the iteration ends on them
            break
