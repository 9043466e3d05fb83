"""Shared aliases and Protocols: the narrow contracts between components."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from eblocks.message import Message

if TYPE_CHECKING:
    from eblocks.spec.policies import Route

__all__ = [
    "Call",
    "Clock",
    "Endpoint",
    "Layer",
    "Resolver",
    "Scaler",
    "Send",
    "SystemClock",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ready instance of a block, as a resolver reports it."""

    block: str
    instance: str
    host: str
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Call(NamedTuple):
    """An outbound request as it moves down the client stack.

    ``deadline`` is on the clock's monotonic scale; ``endpoint`` is filled in by
    the balancer layer; ``attempt`` counts tries from 1. ``route`` is the policy
    route the call matched (the route layer sets it; deadline and retry layers
    read its timeouts and retries) and ``subset`` the endpoint labels its
    destination selects (the balancer layer keeps only endpoints that have them).

    Immutable: a layer that changes a field passes on a copy. A named tuple,
    not a frozen dataclass: each layer makes a copy on every request, and a
    tuple is made in a third of the time a frozen dataclass's ``__init__``
    takes (it sets each field through ``object.__setattr__``).
    """

    target: str
    message: Message
    deadline: float | None = None
    endpoint: Endpoint | None = None
    attempt: int = 1
    route: Route | None = None
    subset: Mapping[str, str] | None = None

    # Copies for the layers, on every request: several times faster than
    # _replace(), which goes through keywords and a dict. They name every
    # field, so a new field must be added to each of them.
    def with_deadline(self, deadline: float) -> Call:
        c = self
        return _call(
            Call, (c.target, c.message, deadline, c.endpoint, c.attempt, c.route, c.subset)
        )

    def with_endpoint(self, endpoint: Endpoint) -> Call:
        c = self
        return _call(
            Call, (c.target, c.message, c.deadline, endpoint, c.attempt, c.route, c.subset)
        )

    def with_attempt(self, attempt: int) -> Call:
        c = self
        return _call(
            Call, (c.target, c.message, c.deadline, c.endpoint, attempt, c.route, c.subset)
        )

    def with_message(self, message: Message) -> Call:
        """The same try with ``message`` (a layer's per-try headers: a span's, a token)."""
        c = self
        return _call(
            Call, (c.target, message, c.deadline, c.endpoint, c.attempt, c.route, c.subset)
        )

    def with_route(
        self, route: Route, target: str, subset: Mapping[str, str] | None, message: Message
    ) -> Call:
        """The call as a route sends it on: maybe to another block, a subset, a new message."""
        return _call(
            Call, (target, message, self.deadline, None, self.attempt, route, subset or None)
        )


_call = tuple.__new__  # a `Call` from its seven fields, without the keyword-parsing `__new__`


Send = Callable[[Call], Awaitable[Message]]
"""An async function that carries a :class:`Call` and returns the reply."""


class Layer(Protocol):
    """One concern of the client stack: wraps the inner ``Send``."""

    def __call__(self, inner: Send, /) -> Send: ...


@runtime_checkable
class Resolver(Protocol):
    """Where the instances of a block are. Implementations: supervisor state, gossip."""

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        """The ready endpoints of ``block`` now (may be empty)."""
        ...

    def watch(self) -> AsyncIterator[Mapping[str, Sequence[Endpoint]]]:
        """Yield the whole view each time it changes."""
        ...


@runtime_checkable
class Scaler(Protocol):
    """Changes how many instances a pool (a worker block) has.

    Implementations: `LocalProcessScaler` (the local supervisor) and
    `KubernetesScaler` (a Deployment's ``scale`` subresource).
    """

    async def scale(self, pool: str, n: int) -> None:
        """Ask for ``n`` instances of ``pool``; returns once the request is placed."""
        ...

    async def current(self, pool: str) -> int | None:
        """The instance count ``pool`` is set to now (None: not known yet)."""
        ...


class Clock(Protocol):
    """Time as policies see it; tests inject a fake one."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)  # read on every call: no Python frame around it

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
