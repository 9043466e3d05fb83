"""Push-pull over TCP: a full state each way on one short connection.

A joiner (and, every ``sync_interval``, every member) exchanges its whole view
with one peer. In datagrams that is N records split into many packets, any of
which may be lost; over a stream it is one signed message each way::

    client                                   server (same port number as UDP)
      | -- [u32 length][SYNC: my state] ------> |  decode + authenticate (gossip key)
      | <------ [u32 length][SYNC_REPLY] ------ |  merge, answer with its state
      close                                     close

Both messages are ordinary gossip packets (same envelope, same HMAC), just
allowed up to ``SwimConfig.max_stream`` bytes. A message that fails the MAC is
counted in the node's ``dropped`` counters and the connection closed without
an answer, so a peer without the key learns nothing. A zero-length answer
means "no reply" (the server is leaving). When a connection cannot be made or
times out, the node falls back to a push-pull in datagrams.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

from eblocks.discovery.swim import Addr, SwimNode

__all__ = ["StreamPushPull", "read_frame", "write_frame"]

_LENGTH = struct.Struct("!I")
MAX_CONNECTIONS = 16


class FrameError(Exception):
    """A frame that is too large or cut short."""


async def read_frame(reader: asyncio.StreamReader, max_size: int) -> bytes:
    """One length-prefixed message; raises :class:`FrameError` when oversized or cut short."""
    try:
        head = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(head)
        if length > max_size:
            raise FrameError(f"oversized: {length} > {max_size} bytes")
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("truncated") from exc


def write_frame(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(_LENGTH.pack(len(data)) + data)


class StreamPushPull:
    """The TCP side of one gossip node: a listener and outgoing push-pulls.

    ``node`` is a callable so the listener can be bound before the node exists
    (the node needs the bound port in its record).
    """

    def __init__(
        self,
        node: Callable[[], SwimNode | None],
        *,
        wake: Callable[[], None] = lambda: None,
        timeout: float = 2.0,
    ) -> None:
        self._node = node
        self._wake = wake
        self._timeout = timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def listen(self, host: str, port: int) -> None:
        """Accept push-pulls on ``host:port`` (TCP); raises OSError when the port is taken."""
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

    def push_pull(self, addr: Addr, data: bytes) -> None:
        """Start an exchange with ``addr`` in the background."""
        task = asyncio.get_running_loop().create_task(self._exchange(addr, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _exchange(self, addr: Addr, data: bytes) -> None:
        node = self._node()
        if node is None:
            return
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await asyncio.open_connection(addr[0], addr[1])
                write_frame(writer, data)
                await writer.drain()
                reply = await read_frame(reader, node.config.max_stream)
        except (OSError, TimeoutError, FrameError):
            node.stream_failed(addr)
            return
        finally:
            if writer is not None:
                writer.close()
        if reply:
            node.receive_stream(addr, reply)
            self._wake()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node = self._node()
        peer = writer.get_extra_info("peername")
        try:
            if node is None or self._slots.locked():
                return  # busy: the peer falls back to datagrams
            async with self._slots, asyncio.timeout(self._timeout):
                try:
                    data = await read_frame(reader, node.config.max_stream)
                except FrameError as exc:
                    reason = str(exc).split(":")[0]
                    node.counters.dropped[reason] = node.counters.dropped.get(reason, 0) + 1
                    return
                reply = node.receive_stream((str(peer[0]), int(peer[1])), data)
                self._wake()
                if reply is None:
                    return  # rejected (bad key, malformed): no answer at all
                write_frame(writer, reply)
                await writer.drain()
        except (OSError, TimeoutError):
            pass  # the peer went away: its side falls back or retries
        finally:
            writer.close()
