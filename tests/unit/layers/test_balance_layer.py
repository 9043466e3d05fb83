"""Balance layer: picks an endpoint for each call and reports each try to the balancer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

import pytest

from eblocks._types import Call, Endpoint, Send
from eblocks.balance import P2C, RoundRobin, Ticket
from eblocks.errors import ConnectError, NoEndpointsError, UpstreamError
from eblocks.layers.balance import balance
from eblocks.message import HASH_KEY_HEADER, IDEMPOTENCY_HEADER, Message
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


class RecordingFeedback:
    """A `Feedback` balancer that picks the first endpoint and logs the hooks."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object, object]] = []
        self.keys: list[str | None] = []

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None) -> Endpoint:
        self.keys.append(key)
        return endpoints[0]

    def begin(self, endpoint: Endpoint, nbytes: int) -> Ticket:
        self.log.append(("begin", endpoint.instance, nbytes))
        return Ticket(endpoint, nbytes)

    def end(self, ticket: Ticket, ok: bool) -> None:
        self.log.append(("end", ticket.endpoint.instance, ok))


def feedback_stack(
    fn: Callable[[Call], Message | Awaitable[Message]],
) -> tuple[Send, RecordingFeedback]:
    balancer = RecordingFeedback()
    send = balance(StaticResolver({"b": ["10.0.0.1:80"]}), balancer)(transport_from(fn))
    return send, balancer


async def test_reports_the_start_and_end_of_each_try() -> None:
    send, balancer = feedback_stack(lambda call: Message(b"ok"))
    await send(Call("b", Message(b"12345")))
    assert balancer.log == [("begin", "b-0", 5), ("end", "b-0", True)]


@pytest.mark.parametrize(
    ("failure", "ok"),
    [
        (ConnectError("refused"), False),
        (UpstreamError("boom", status=503, reason="upstream", origin="b"), False),
        (UpstreamError("bad", status=400, reason="bad_request", origin="b"), True),
    ],
)
async def test_a_failed_try_ends_not_ok_unless_the_endpoint_answered(
    failure: Exception, ok: bool
) -> None:
    def fail(call: Call) -> Message:
        raise failure

    send, balancer = feedback_stack(fail)
    with pytest.raises(type(failure)):
        await send(Call("b", Message(b"x")))
    assert balancer.log == [("begin", "b-0", 1), ("end", "b-0", ok)]


async def test_a_cancelled_try_still_ends() -> None:
    async def hang(call: Call) -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    send, balancer = feedback_stack(hang)
    task = asyncio.ensure_future(send(Call("b", Message())))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert balancer.log == [("begin", "b-0", 0), ("end", "b-0", True)]


async def test_routes_on_the_hash_key_header_else_the_idempotency_key() -> None:
    send, balancer = feedback_stack(lambda call: Message(b"ok"))
    both = {HASH_KEY_HEADER: "tenant-9", IDEMPOTENCY_HEADER: "doc-1"}
    await send(Call("b", Message(b"", both)))
    await send(Call("b", Message(b"", {IDEMPOTENCY_HEADER: "doc-2"})))
    await send(Call("b", Message()))
    assert balancer.keys == ["tenant-9", "doc-2", None]


async def test_a_p2c_balancer_sees_its_tries_in_flight() -> None:
    gate = asyncio.Event()
    balancer = P2C(random.Random(0))
    resolver = StaticResolver({"b": ["10.0.0.1:80", "10.0.0.2:80"]})

    async def wait(call: Call) -> Message:
        await gate.wait()
        return Message(b"ok")

    send = balance(resolver, balancer)(transport_from(wait))
    first = asyncio.ensure_future(send(Call("b", Message())))
    await asyncio.sleep(0)
    busy = [ep for ep in resolver.endpoints("b") if balancer.inflight(ep) == 1]
    assert len(busy) == 1
    second = asyncio.ensure_future(send(Call("b", Message())))
    await asyncio.sleep(0)
    assert all(balancer.inflight(ep) == 1 for ep in resolver.endpoints("b"))
    gate.set()
    await asyncio.gather(first, second)
    assert all(balancer.inflight(ep) == 0 for ep in resolver.endpoints("b"))
