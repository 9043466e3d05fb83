"""Shared aliases and Protocols: the narrow contracts between components."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from eblocks.message import Message

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


@dataclass(frozen=True, slots=True)
class Call:
    """An outbound request as it moves down the client stack.

    ``deadline`` is on the clock's monotonic scale; ``endpoint`` is filled in by
    the balancer layer; ``attempt`` counts tries from 1.
    """

    target: str
    message: Message
    deadline: float | None = None
    endpoint: Endpoint | None = None
    attempt: int = 1

    # Copies for the layers, on every request: about twice as fast as
    # dataclasses.replace(), which walks the fields each time. They name every
    # field, so a new field must be added to each of them.
    def with_deadline(self, deadline: float) -> Call:
        return Call(self.target, self.message, deadline, self.endpoint, self.attempt)

    def with_endpoint(self, endpoint: Endpoint) -> Call:
        return Call(self.target, self.message, self.deadline, endpoint, self.attempt)

    def with_attempt(self, attempt: int) -> Call:
        return Call(self.target, self.message, self.deadline, self.endpoint, attempt)


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
