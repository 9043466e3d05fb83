"""Balance layer: picks an endpoint from the resolver's view for each call."""

from __future__ import annotations

import pytest

from eblocks._types import Call, Endpoint
from eblocks.balance import RoundRobin
from eblocks.errors import NoEndpointsError
from eblocks.layers.balance import balance
from eblocks.message import Message
from eblocks.testing import StaticResolver, transport_from


class Recorder:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint | None] = []

    def __call__(self, call: Call) -> Message:
        self.endpoints.append(call.endpoint)
        return Message(b"ok")


async def test_no_endpoints_fails_without_calling_inner() -> None:
    inner = Recorder()
    send = balance(StaticResolver(), RoundRobin())(transport_from(inner))
    with pytest.raises(NoEndpointsError, match="no ready instance of block 'b'") as info:
        await send(Call("b", Message()))
    assert info.value.detail == {"target": "b"}
    assert isinstance(info.value, LookupError)
    assert inner.endpoints == []


async def test_round_robin_over_the_target_endpoints() -> None:
    resolver = StaticResolver(
        {"b": ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], "c": ["10.0.9.9:80"]}
    )
    inner = Recorder()
    send = balance(resolver, RoundRobin())(transport_from(inner))
    for _ in range(6):
        await send(Call("b", Message()))
    hosts = [ep.host if ep else None for ep in inner.endpoints]
    assert hosts == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] * 2


async def test_follows_changes_of_the_view() -> None:
    resolver = StaticResolver({"b": ["10.0.0.1:80"]})
    inner = Recorder()
    send = balance(resolver, RoundRobin())(transport_from(inner))
    await send(Call("b", Message()))
    resolver.set("b", ["10.0.0.7:81"])
    await send(Call("b", Message()))
    resolver.set("b", [])
    with pytest.raises(NoEndpointsError):
        await send(Call("b", Message()))
    assert [ep.address if ep else None for ep in inner.endpoints] == [
        "10.0.0.1:80",
        "10.0.0.7:81",
    ]
