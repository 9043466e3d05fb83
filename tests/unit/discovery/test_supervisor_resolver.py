"""SupervisorResolver: endpoints from the supervisor's file, re-read at most every refresh."""

from __future__ import annotations

from pathlib import Path

from eblocks import Endpoint, Resolver, SupervisorResolver
from eblocks.discovery import write_endpoints
from eblocks.testing import FakeClock

A1 = Endpoint("a", "a-1", "127.0.0.1", 9001)
A2 = Endpoint("a", "a-2", "127.0.0.1", 9002, {"zone": "z"})
B1 = Endpoint("b", "b-1", "127.0.0.1", 9101)


def test_reads_the_published_endpoints(tmp_path: Path) -> None:
    write_endpoints(tmp_path, [A2, B1, A1])
    resolver = SupervisorResolver(tmp_path, clock=FakeClock())
    assert isinstance(resolver, Resolver)
    assert resolver.endpoints("a") == (A1, A2)  # stable order: by instance
    assert resolver.endpoints("b") == (B1,)
    assert resolver.endpoints("c") == ()


def test_no_file_means_no_endpoints(tmp_path: Path) -> None:
    assert SupervisorResolver(tmp_path, clock=FakeClock()).endpoints("a") == ()


def test_rereads_only_after_refresh(tmp_path: Path) -> None:
    clock = FakeClock()
    write_endpoints(tmp_path, [A1])
    resolver = SupervisorResolver(tmp_path, refresh=0.1, clock=clock)
    assert resolver.endpoints("a") == (A1,)
    write_endpoints(tmp_path, [A1, A2])
    clock.advance(0.05)
    assert resolver.endpoints("a") == (A1,)  # cached within the refresh interval
    clock.advance(0.05)
    assert resolver.endpoints("a") == (A1, A2)


def test_keeps_the_last_good_view_on_a_torn_file(tmp_path: Path) -> None:
    clock = FakeClock()
    write_endpoints(tmp_path, [A1])
    resolver = SupervisorResolver(tmp_path, refresh=0.1, clock=clock)
    assert resolver.endpoints("a") == (A1,)
    path = tmp_path / "endpoints.json"
    path.unlink()
    path.write_text('{"blocks": {"a": [')
    clock.advance(1)
    assert resolver.endpoints("a") == (A1,)


async def test_watch_yields_changes(tmp_path: Path) -> None:
    clock = FakeClock()
    write_endpoints(tmp_path, [A1])
    resolver = SupervisorResolver(tmp_path, refresh=0.1, clock=clock)
    changes = resolver.watch()
    first = await anext(changes)
    write_endpoints(tmp_path, [A1, B1])
    second = await anext(changes)
    assert (dict(first), dict(second)) == ({"a": (A1,)}, {"a": (A1,), "b": (B1,)})
    assert clock.sleeps  # it polled on the injected clock
