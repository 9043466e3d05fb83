"""`Context`: what a handler knows about the request it is handling."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eblocks.message import IDEMPOTENCY_HEADER, REQUEST_ID_HEADER, USER_HEADER, Message

if TYPE_CHECKING:
    from eblocks.block.client import MeshClient

__all__ = ["Context"]


class Context:
    """Per-request facts and the way to call the rest of the mesh.

    ``ctx.call(service, msg)`` calls a block or pattern by name; the request
    id, idempotency key and remaining deadline travel with the call.
    """

    __slots__ = (
        "_client",
        "_logger",
        "block",
        "deadline",
        "headers",
        "idempotency_key",
        "instance",
        "pattern",
        "peer",
        "request_id",
        "stage",
        "trust",
        "user",
    )

    def __init__(
        self,
        *,
        block: str,
        instance: str,
        request_id: str,
        idempotency_key: str | None = None,
        deadline: float | None = None,
        headers: Mapping[str, str] | None = None,
        client: MeshClient | None = None,
    ) -> None:
        self.block = block
        self.instance = instance
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        self.deadline = deadline
        self.headers: Mapping[str, str] = headers or {}
        self.pattern: str | None = None
        self.stage: int | None = None
        self.peer: str | None = None  # the caller's verified SPIFFE ID (mTLS), else None
        self.user: str | None = None  # the end user's subject, carried in request tokens
        self.trust = 1.0  # the caller's trust score (eblocks.security.anomaly)
        self._client = client
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """The block's logger, tagging each line with the request id."""
        if self._logger is None:
            base = logging.getLogger(f"eblocks.block.{self.block}")
            self._logger = logging.LoggerAdapter(base, {"request_id": self.request_id})
        return self._logger

    def outbound(self, msg: Message) -> Message:
        """``msg`` with this request's id and idempotency key (unless it sets its own)."""
        extra: dict[str, str] = {}
        if REQUEST_ID_HEADER not in msg.headers:
            extra[REQUEST_ID_HEADER] = self.request_id
        if self.idempotency_key and IDEMPOTENCY_HEADER not in msg.headers:
            extra[IDEMPOTENCY_HEADER] = self.idempotency_key
        if self.user is not None:  # the token layer moves it into the next hop's token
            extra[USER_HEADER] = self.user
        return msg.replace(headers=extra) if extra else msg

    async def call(self, service: str, msg: Message | bytes | str | Any) -> Message:
        """Call a block or pattern of the mesh and return its reply."""
        if self._client is None:
            raise RuntimeError("this context has no mesh client (a block outside a mesh)")
        if not isinstance(msg, Message):
            msg = Message.of(msg)
        return await self._client.call(service, self.outbound(msg), deadline=self.deadline)

    async def forward(self, pattern: str, start: int, msg: Message) -> Message:
        """Walk ``pattern`` on from stage ``start`` with this request's output."""
        if self._client is None:
            raise RuntimeError("this context has no mesh client (a block outside a mesh)")
        return await self._client.run_pattern(
            pattern, start, self.outbound(msg), deadline=self.deadline
        )
