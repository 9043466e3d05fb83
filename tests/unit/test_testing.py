"""The test doubles shipped in eblocks.testing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from eblocks import Call, Clock, Endpoint, Message, Resolver
from eblocks.errors import ConnectError
from eblocks.testing import FakeClock, StaticResolver, transport_from


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=10.0)
    assert clock.monotonic() == 10.0
    clock.advance(2.5)
    assert clock.monotonic() == 12.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert clock.monotonic() == 12.5


async def test_fake_clock_sleep_advances_at_once_and_records() -> None:
    clock = FakeClock()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await clock.sleep(3600)
    await clock.sleep(0.5)
    await clock.sleep(-1)
    assert clock.monotonic() == 3600.5
    assert clock.sleeps == [3600, 0.5, -1]
    assert loop.time() - began < 60  # no real hour went by


async def test_fake_clock_sleep_yields_to_other_tasks() -> None:
    clock, order = FakeClock(), []

    async def other() -> None:
        order.append("other")

    task = asyncio.create_task(other())
    await clock.sleep(1)
    order.append("after sleep")
    await task
    assert order == ["other", "after sleep"]


def test_fake_clock_is_a_clock() -> None:
    clock: Clock = FakeClock()
    assert clock.monotonic() == 0.0


def test_static_resolver_endpoints() -> None:
    explicit = Endpoint("b", "b-x", "10.0.0.9", 7000, {"zone": "a"})
    resolver = StaticResolver({"a": ["127.0.0.1:8000", "[::1]:8001"], "b": [explicit]})
    assert isinstance(resolver, Resolver)
    assert resolver.endpoints("a") == (
        Endpoint("a", "a-0", "127.0.0.1", 8000),
        Endpoint("a", "a-1", "::1", 8001),
    )
    assert resolver.endpoints("b") == (explicit,)
    assert resolver.endpoints("c") == ()


@pytest.mark.parametrize("bad", ["localhost", ":80", "host:http"])
def test_static_resolver_rejects_bad_addresses(bad: str) -> None:
    with pytest.raises(ValueError, match="must be 'host:port'"):
        StaticResolver({"a": [bad]})


async def test_static_resolver_watch_yields_each_change() -> None:
    resolver = StaticResolver({"a": ["127.0.0.1:1"]})
    views: list[Mapping[str, Sequence[Endpoint]]] = []
    changes = resolver.watch()
    views.append(await anext(changes))
    resolver.set("b", ["127.0.0.1:2"])
    views.append(await anext(changes))
    resolver.set("a", [])
    views.append(await anext(changes))
    await changes.aclose()
    assert [sorted(v) for v in views] == [["a"], ["a", "b"], ["b"]]
    assert views[2]["b"][0].port == 2


async def test_static_resolver_watch_waits_for_a_change() -> None:
    resolver = StaticResolver({"a": ["127.0.0.1:1"]})
    changes = resolver.watch()
    await anext(changes)
    pending = asyncio.ensure_future(anext(changes))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not pending.done()
    resolver.set("a", ["127.0.0.1:1"])  # the same view: no news
    for _ in range(5):
        await asyncio.sleep(0)
    assert not pending.done()
    resolver.set("a", ["127.0.0.1:9"])
    view = await asyncio.wait_for(pending, timeout=5)
    assert view["a"][0].port == 9
    await changes.aclose()


async def test_static_resolver_two_watchers_both_see_a_change() -> None:
    resolver = StaticResolver()
    first, second = resolver.watch(), resolver.watch()
    assert await anext(first) == await anext(second) == {}
    waiting = [asyncio.ensure_future(anext(w)) for w in (first, second)]
    await asyncio.sleep(0)
    resolver.set("a", ["127.0.0.1:1"])
    views = await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)
    assert [sorted(v) for v in views] == [["a"], ["a"]]
    await first.aclose()
    await second.aclose()


async def test_transport_from_sync_function() -> None:
    calls: list[Call] = []

    def answer(call: Call) -> Message:
        calls.append(call)
        return Message(b"re: " + call.message.body)

    send = transport_from(answer)
    reply = await send(Call("b", Message(b"hi")))
    assert reply.body == b"re: hi"
    assert [c.target for c in calls] == ["b"]


async def test_transport_from_async_function() -> None:
    async def answer(call: Call) -> Message:
        await asyncio.sleep(0)
        return Message(call.target.encode())

    assert (await transport_from(answer)(Call("b", Message()))).body == b"b"


async def test_transport_from_raises_what_the_function_raises() -> None:
    def refuse(call: Call) -> Message:
        raise ConnectError("refused")

    with pytest.raises(ConnectError, match="refused"):
        await transport_from(refuse)(Call("b", Message()))


async def test_transport_from_rejects_non_messages() -> None:
    send = transport_from(lambda call: b"bytes")  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="returned bytes, not Message"):
        await send(Call("b", Message()))
