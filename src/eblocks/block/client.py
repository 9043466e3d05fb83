"""`MeshClient`: calls blocks and patterns by name through the client stack."""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from eblocks._types import Call, Clock, Endpoint, Resolver, Send, SystemClock
from eblocks.block.stack import client_stack, endpoint_stack
from eblocks.errors import NoRouteError
from eblocks.layers.mirror import Mirrors
from eblocks.layers.route import RouteStats, Routing
from eblocks.message import REQUEST_ID_HEADER, SOURCE_HEADER, Message
from eblocks.patterns import Plan
from eblocks.policies import LivePolicies
from eblocks.spec.models import MeshSpec
from eblocks.telemetry.core import Telemetry
from eblocks.transport import HttpTransport

if TYPE_CHECKING:
    from eblocks.security import Auth

__all__ = ["MeshClient", "new_request_id"]


def new_request_id() -> str:
    """32 random hex digits, like ``uuid4().hex`` at a third of its cost."""
    return os.urandom(16).hex()


class MeshClient:
    """Outbound side of a block (or of a CLI): one pooled transport, one stack per target.

    With ``telemetry`` (an instance's), every call is counted and traced.
    """

    def __init__(
        self,
        spec: MeshSpec,
        resolver: Resolver,
        *,
        source: str = "",
        clock: Clock | None = None,
        rng: random.Random | None = None,
        transport: HttpTransport | None = None,
        telemetry: Telemetry | None = None,
        auth: Auth | None = None,
        policies: LivePolicies | None = None,
    ) -> None:
        """``auth`` (the caller's identity) turns on mTLS and, if the spec says so, tokens.

        ``policies`` is the live policy holder this process's layers read (default:
        the spec's policies, version 0); `eblocks apply` swaps what it holds.
        """
        self.spec = spec
        self.policies = policies or LivePolicies.of(spec.policies)
        self.auth = auth
        self._token = auth.token_layer() if auth is not None else None
        self.plan = Plan.from_spec(spec)
        self._resolver = resolver
        self._source = source
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        if transport is None and auth is not None:
            transport = HttpTransport(
                clock=self._clock,
                ssl=auth.client_ssl(),
                plain_targets=auth.plain_targets,
                max_connections=self._max_connections,
            )
        self._transport = transport or HttpTransport(
            clock=self._clock, max_connections=self._max_connections
        )
        self._stacks: dict[str, Send] = {}
        self._direct: dict[str, Send] = {}
        self.telemetry = telemetry
        self.routing = Routing(
            self.policies,
            self.stack,
            self._route_to_pattern,
            Mirrors(self.stack, self._rng),
            RouteStats(),
            self._rng,
        )
        if telemetry is not None:
            self.routing.stats.publish(telemetry.hooks)
            self.routing.mirrors.publish(telemetry.hooks)

    async def __aenter__(self) -> MeshClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.routing.mirrors.aclose()  # shadow copies first: they use the transport
        await self._transport.aclose()

    async def call(self, target: str, msg: Message, *, deadline: float | None = None) -> Message:
        """Call a block or a pattern by name and return its reply."""
        extra: dict[str, str] = {}
        if REQUEST_ID_HEADER not in msg.headers:
            extra[REQUEST_ID_HEADER] = new_request_id()
        if target in self.plan:
            msg = msg.replace(headers=extra) if extra else msg
            return await self.run_pattern(target, 0, msg, deadline=deadline)
        return await self.send_block(target, msg, deadline=deadline, extra=extra)

    async def run_pattern(
        self, pattern: str, start: int, msg: Message, *, deadline: float | None = None
    ) -> Message:
        """Walk ``pattern`` from stage ``start`` (used by filters to forward)."""

        async def send(block: str, tagged: Message) -> Message:
            return await self.send_block(block, tagged, deadline=deadline)

        return await self.plan.run(pattern, start, msg, send)

    def _route_to_pattern(
        self, pattern: str, msg: Message, deadline: float | None
    ) -> Awaitable[Message]:
        return self.run_pattern(pattern, 0, msg, deadline=deadline)

    def send_block(
        self,
        block: str,
        msg: Message,
        *,
        deadline: float | None = None,
        extra: dict[str, str] | None = None,
    ) -> Awaitable[Message]:
        """Send ``msg`` (with ``extra`` headers) to ``block`` through its stack.

        A plain function that hands back the stack's coroutine: one coroutine
        frame less on every call. The caller's and this client's headers are
        merged into one copy of the message.
        """
        if self._source:
            extra = (
                {**extra, SOURCE_HEADER: self._source} if extra else {SOURCE_HEADER: self._source}
            )
        if extra:
            msg = msg.replace(headers=extra)
        return self.stack(block)(Call(block, msg, deadline=deadline))

    def endpoints(self, block: str) -> Sequence[Endpoint]:
        """The ready endpoints of ``block`` now, as the resolver sees them."""
        return self._resolver.endpoints(block)

    async def send_to(
        self, endpoint: Endpoint, msg: Message, *, deadline: float | None = None
    ) -> Message:
        """One try at one chosen endpoint, bounded by its block's timeout (no retry)."""
        block = endpoint.block
        direct = self._direct.get(block)
        if direct is None:
            direct = endpoint_stack(
                self.spec.settings(block),
                self._transport.send,
                self._clock,
                self.telemetry,
                self._token,
            )
            self._direct[block] = direct
        if self._source:
            msg = msg.replace(headers={SOURCE_HEADER: self._source})
        return await direct(Call(block, msg, deadline=deadline, endpoint=endpoint))

    def _max_connections(self, block: str) -> int | None:
        """The policies' ``limits.max_connections`` of ``block`` (read per call)."""
        limits = self.policies.current.block(block).limits
        return limits.max_connections if limits is not None else None

    def stack(self, block: str) -> Send:
        """The whole outbound stack of ``block``, built on first use (routes use it too)."""
        stack = self._stacks.get(block)
        if stack is None:
            if block not in self.spec.blocks:
                known = ", ".join(sorted([*self.spec.blocks, *self.spec.patterns]))
                raise NoRouteError(
                    f"no block or pattern named {block!r} (known: {known})",
                    detail={"target": block},
                )
            settings = self.spec.settings(block)
            stack = client_stack(
                settings,
                self._resolver,
                self._transport.send,
                self._clock,
                self._rng,
                self.telemetry,
                self._token,
                routing=self.routing,
                policies=self.policies,
            )
            self._stacks[block] = stack
        return stack
