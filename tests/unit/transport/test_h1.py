"""The lean HTTP/1.1 client against raw loopback servers that answer in every legal shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from eblocks._types import Call, Endpoint
from eblocks.errors import ConnectError, MeshTimeoutError, UpstreamError
from eblocks.message import Message
from eblocks.transport import HttpTransport
from eblocks.transport.h1 import ProtocolError, Slots, request_head

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Raw:
    """A TCP server whose handler writes whatever bytes a test wants."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.reply(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader, raw: Raw) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length)
    raw.requests.append(head + body)
    return body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Awaitable[Raw]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> Raw:
        raw = Raw(reply)
        server = await asyncio.start_server(raw._serve, "127.0.0.1", 0)
        raw.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return raw

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def call(port: int, body: bytes = b"hi", headers: dict[str, str] | None = None) -> Call:
    return Call(
        "echo", Message(body, headers or {}), endpoint=Endpoint("echo", "e-0", "127.0.0.1", port)
    )


async def test_content_length_replies_reuse_one_connection(
    serve: Callable[[Reply], Awaitable[Raw]],
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader, raw)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Answer: 1\r\n\r\n" % len(body) + body
            )

    raw = await serve(reply)
    async with HttpTransport() as transport:
        for n in range(5):
            got = await transport.send(call(raw.port, b"x" * n, {"x-eblocks-source": "a"}))
            assert got.body == b"x" * n
            assert got.headers["x-answer"] == "1"
    assert raw.connections == 1
    assert raw.requests[0].startswith(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nx-eblocks-source: a\r\n" in raw.requests[0]


async def test_chunked_reply_and_large_bodies(serve: Callable[[Reply], Awaitable[Raw]]) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader, raw)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 70000):
                part = body[start : start + 70000]
                writer.write(b"%x\r\n" % len(part) + part + b"\r\n")
            writer.write(b"0\r\n\r\n")

    raw = await serve(reply)
    big = bytes(range(256)) * 8192  # 2 MiB each way
    async with HttpTransport() as transport:
        assert (await transport.send(call(raw.port, big))).body == big
        assert (await transport.send(call(raw.port, b"small"))).body == b"small"
    assert raw.connections == 1


async def test_connection_close_and_eof_delimited_replies(
    serve: Callable[[Reply], Awaitable[Raw]],
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader, raw)
        if raw.connections % 2:  # no length: the body runs until the server closes
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    raw = await serve(reply)
    async with HttpTransport() as transport:
        assert (await transport.send(call(raw.port, b"eof"))).body == b"eof"
        assert (await transport.send(call(raw.port))).body == b"ok"
        assert (await transport.send(call(raw.port, b"again"))).body == b"again"
    assert raw.connections == 3  # a closing reply never leaves its connection in the pool


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    serve: Callable[[Reply], Awaitable[Raw]],
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()  # then close: an idle keep-alive timeout on the server

    raw = await serve(reply)
    async with HttpTransport() as transport:
        assert (await transport.send(call(raw.port))).body == b"ok"
        await asyncio.sleep(0.05)  # the FIN reaches the client's loop
        assert transport._pool.idle == 0  # the closed connection left the pool by itself
        assert (await transport.send(call(raw.port))).body == b"ok"
    assert raw.connections == 2


async def test_error_statuses_keep_the_mesh_reason(
    serve: Callable[[Reply], Awaitable[Raw]],
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        body = b'{"error": "overloaded", "message": "busy"}'
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nX-Eblocks-Error: overloaded\r\n"
            b"Retry-After: 2\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )

    raw = await serve(reply)
    async with HttpTransport() as transport:
        with pytest.raises(UpstreamError) as failed:
            await transport.send(call(raw.port))
    assert isinstance(failed.value, UpstreamError)
    assert failed.value.upstream_reason == "overloaded"
    assert failed.value.upstream_status == 503
    assert failed.value.retry_after == 2.0


@pytest.mark.parametrize(
    "answer",
    [b"not http at all\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
    ids=["garbage", "cut-short"],
)
async def test_bad_or_cut_replies_fail_as_connect_errors(
    serve: Callable[[Reply], Awaitable[Raw]], answer: bytes
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        writer.write(answer)

    raw = await serve(reply)
    async with HttpTransport() as transport:
        with pytest.raises(ConnectError, match="echo"):
            await transport.send(call(raw.port))


async def test_refused_connection_is_a_connect_error() -> None:
    import socket

    holder = socket.socket()  # a bound port nobody listens on: refused, never someone else's
    holder.bind(("127.0.0.1", 0))
    try:
        async with HttpTransport() as transport:
            with pytest.raises(ConnectError, match="cannot reach 'echo'"):
                await transport.send(call(holder.getsockname()[1]))
    finally:
        holder.close()


async def test_a_cancelled_call_closes_its_connection(
    serve: Callable[[Reply], Awaitable[Raw]],
) -> None:
    release = asyncio.Event()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader, raw)
            if body == b"slow":
                await release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

    raw = await serve(reply)
    async with HttpTransport() as transport:
        slow = asyncio.create_task(transport.send(call(raw.port, b"slow")))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        release.set()
        # the late reply to "slow" must never be taken for the next call's
        assert (await transport.send(call(raw.port, b"next"))).body == b"next"
    assert raw.connections == 2


def test_request_heads_refuse_what_would_break_the_framing() -> None:
    assert request_head("h:1", {"a": "b"}, 3) == (
        b"POST / HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\na: b\r\n\r\n"
    )
    with pytest.raises(ProtocolError, match="CR or LF"):
        request_head("h:1", {"x-a": "b\r\nx-injected: 1"}, 0)
    with pytest.raises(ProtocolError, match="not an HTTP token"):
        request_head("h:1", {"bad name": "v"}, 0)
    with pytest.raises(ProtocolError, match="not an HTTP token"):
        request_head("h:1", {"x:y": "v"}, 0)


async def test_a_bad_header_fails_the_call_before_any_byte_is_sent(
    serve: Callable[[Reply], Awaitable[Raw]],
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)

    raw = await serve(reply)
    async with HttpTransport() as transport:
        with pytest.raises(ConnectError, match="CR or LF"):
            await transport.send(call(raw.port, headers={"x-a": "1\n2"}))
    assert raw.connections == 0


async def test_slots_serve_waiters_in_order_and_skip_cancelled_ones() -> None:
    slots = Slots(1)
    await slots.take()
    order: list[str] = []

    async def waiter(name: str) -> None:
        await slots.take()
        order.append(name)
        slots.give()

    first = asyncio.create_task(waiter("first"))
    gone = asyncio.create_task(waiter("gone"))
    last = asyncio.create_task(waiter("last"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    slots.give()
    await asyncio.wait_for(asyncio.gather(first, last), 5)
    assert order == ["first", "last"]
    assert slots.in_use == 0
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_connect_timeout_is_a_mesh_timeout(
    serve: Callable[[Reply], Awaitable[Raw]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eblocks.transport import h1

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)

    raw = await serve(reply)
    monkeypatch.setattr(h1, "_CONNECT_TIMEOUT", 0.0)  # due before the connect can finish
    async with HttpTransport() as transport:
        with pytest.raises(MeshTimeoutError, match="connecting to 'echo'"):
            await transport.send(call(raw.port))


async def test_an_aiohttp_server_end_to_end(
    serve_app: Callable[[web.Application], Awaitable[int]],
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(
            body=await request.read(), headers={"x-eblocks-seen": request.headers["x-k"]}
        )

    app = web.Application()
    app.router.add_post("/", echo)
    port = await serve_app(app)
    async with HttpTransport() as transport:
        replies = await asyncio.gather(
            *(transport.send(call(port, b"%d" % n, {"x-k": str(n)})) for n in range(50))
        )
    assert [r.body for r in replies] == [b"%d" % n for n in range(50)]
    assert [r.headers["x-eblocks-seen"] for r in replies] == [str(n) for n in range(50)]


async def test_an_endless_head_is_cut_at_its_bound(
    serve: Callable[[Reply], Awaitable[Raw]],
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for n in range(2000):  # 2000 headers of ~50 B, no blank line: never a whole head
            writer.write(b"X-Filler-%d: %s\r\n" % (n, b"f" * 40))
            await writer.drain()
        await asyncio.sleep(5)

    raw = await serve(reply)
    async with HttpTransport() as transport:
        with pytest.raises(ConnectError, match="response head over"):
            await asyncio.wait_for(transport.send(call(raw.port)), 5)


async def test_an_interim_reply_is_skipped(serve: Callable[[Reply], Awaitable[Raw]]) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"
        )

    raw = await serve(reply)
    async with HttpTransport() as transport:
        assert (await transport.send(call(raw.port))).body == b"real"
