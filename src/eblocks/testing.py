"""Test doubles for code that runs on Eblocks: a clock, a resolver, a transport.

They let the tests of a handler, a layer or a whole client stack run without
sleeping and without sockets::

    clock = FakeClock()
    resolver = StaticResolver({"store": ["127.0.0.1:9000"]})
    send = transport_from(lambda call: Message(b"ok"))

`FakeClock` and `StaticResolver` satisfy the `Clock` and `Resolver` protocols;
`transport_from` builds the innermost `Send` of a stack from a plain function,
like httpx's ``MockTransport``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence

from eblocks._types import Call, Endpoint, Send
from eblocks.message import Message

__all__ = ["FakeClock", "StaticResolver", "transport_from"]


class FakeClock:
    """A `Clock` whose time moves only when told to.

    ``sleep(s)`` records ``s`` in :attr:`sleeps`, moves the time on by ``s`` at
    once and yields to the event loop once, as a real sleep would.
    """

    __slots__ = ("_now", "sleeps")

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(0.0, seconds)  # like asyncio.sleep, a negative sleep is no sleep
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move the time on by ``seconds`` (monotonic: never backwards)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back (advance by {seconds})")
        self._now += seconds


class StaticResolver:
    """A `Resolver` over a fixed view that tests may change with :meth:`set`.

    Endpoints are given per block as `Endpoint` objects or ``"host:port"``
    strings; a string's instance name is ``<block>-<index>``.
    """

    __slots__ = ("_changed", "_view")

    def __init__(self, endpoints: Mapping[str, Sequence[Endpoint | str]] | None = None) -> None:
        self._view: dict[str, tuple[Endpoint, ...]] = {}
        self._changed = asyncio.Event()
        for block, items in (endpoints or {}).items():
            self._view[block] = _endpoints(block, items)

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        return self._view.get(block, ())

    def view(self) -> Mapping[str, Sequence[Endpoint]]:
        """The whole current view, block by block."""
        return dict(self._view)

    def set(self, block: str, endpoints: Sequence[Endpoint | str]) -> None:
        """Replace the endpoints of ``block`` (an empty list removes it) and wake watchers."""
        if endpoints:
            self._view[block] = _endpoints(block, endpoints)
        else:
            self._view.pop(block, None)
        self._changed.set()
        self._changed = asyncio.Event()  # each watcher waits on the event it saw last

    async def watch(self) -> AsyncGenerator[Mapping[str, Sequence[Endpoint]], None]:
        """Yield the view now, then again after each :meth:`set` that changed it."""
        last: Mapping[str, Sequence[Endpoint]] | None = None
        while True:
            changed = self._changed  # taken before reading, so no set() is missed
            current = self.view()
            if current != last:
                last = current
                yield current
            else:
                await changed.wait()


def transport_from(fn: Callable[[Call], Message | Awaitable[Message]]) -> Send:
    """A `Send` that answers every call with ``fn(call)``; ``fn`` may be sync or async.

    Raising a `MeshError` from ``fn`` simulates a failure of the network or of
    the remote block.
    """

    async def send(call: Call) -> Message:
        result = fn(call)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Message):
            raise TypeError(f"transport function returned {type(result).__name__}, not Message")
        return result

    return send


def _endpoints(block: str, items: Sequence[Endpoint | str]) -> tuple[Endpoint, ...]:
    out: list[Endpoint] = []
    for index, item in enumerate(items):
        if isinstance(item, Endpoint):
            out.append(item)
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"endpoint of block {block!r} must be 'host:port', got {item!r}")
        out.append(Endpoint(block, f"{block}-{index}", host.strip("[]"), int(port)))
    return tuple(out)
