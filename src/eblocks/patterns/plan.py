"""Compile the spec's patterns into a plan the blocks and clients walk.

A pattern is a pipeline, a manager-worker pool or a divide-conquer fan-out;
stages and workers may be (nested) patterns. Walking a pipeline from stage
``i``: nested patterns run to completion in turn and their output feeds the
next stage; the first block stage met receives the message tagged with
(pattern, stage) and takes over — it handles, then walks on from ``i + 1``
itself. The last stage's output returns up the chain.

A manager-worker or divide-conquer pattern is entered at one block — its
manager or its divider — tagged with (pattern, 0); that block's role runs the
whole pattern and answers with its output (`eblocks.workload`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from eblocks.errors import BadRequestError
from eblocks.message import (
    IDEMPOTENCY_HEADER,
    PATTERN_HEADER,
    REQUEST_ID_HEADER,
    STAGE_HEADER,
    Message,
)
from eblocks.spec.models import (
    DivideConquer,
    DivideConquerSpec,
    ManagerWorker,
    ManagerWorkerSpec,
    MeshSpec,
    PipelineSpec,
)

__all__ = ["Pattern", "Plan", "SendTo"]

SendTo = Callable[[str, Message], Awaitable[Message]]
"""Send a message to one block (through the client stack)."""

_CARRIED = (REQUEST_ID_HEADER, IDEMPOTENCY_HEADER)

Pattern = tuple[str, ...] | ManagerWorker | DivideConquer
"""One compiled pattern: a pipeline's stages, or a pool's or fan-out's settings."""


class Plan:
    """The compiled patterns of one mesh."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: Mapping[str, Pattern]) -> None:
        self._patterns = dict(patterns)

    @classmethod
    def from_spec(cls, spec: MeshSpec) -> Plan:
        compiled: dict[str, Pattern] = {}
        for name, pattern in spec.patterns.items():
            if isinstance(pattern, PipelineSpec):
                compiled[name] = pattern.stages
            elif isinstance(pattern, ManagerWorkerSpec):
                compiled[name] = pattern.manager_worker
            elif isinstance(pattern, DivideConquerSpec):
                compiled[name] = pattern.divide_conquer
        return cls(compiled)

    def __contains__(self, name: object) -> bool:
        return name in self._patterns

    def pattern(self, name: str) -> Pattern:
        return self._patterns[name]

    def names(self) -> tuple[str, ...]:
        """Every pattern's name, in spec order."""
        return tuple(self._patterns)

    def stages(self, pattern: str) -> tuple[str, ...]:
        """The stages of a pipeline (a pool or fan-out has one: its entry block)."""
        found = self._patterns[pattern]
        return found if isinstance(found, tuple) else (entry_block(found),)

    def locate(self, pattern: str, stage: str, block: str) -> int:
        """Check that ``block`` is stage ``stage`` of ``pattern``; return the index."""
        if pattern not in self._patterns:
            raise BadRequestError(f"unknown pattern {pattern!r} in {PATTERN_HEADER}")
        try:
            index = int(stage)
        except ValueError:
            raise BadRequestError(f"{STAGE_HEADER} must be an integer, got {stage!r}") from None
        stages = self.stages(pattern)
        if not 0 <= index < len(stages) or stages[index] != block:
            raise BadRequestError(
                f"stage {index} of pattern {pattern!r} is not block {block!r}",
                detail={"pattern": pattern, "stage": index},
            )
        return index

    async def run(self, pattern: str, start: int, msg: Message, send: SendTo) -> Message:
        """Walk ``pattern`` from stage ``start``; return the pattern's output."""
        stages = self._patterns[pattern]
        if not isinstance(stages, tuple):
            return await send(entry_block(stages), _tagged(msg, pattern, 0))
        for index in range(start, len(stages)):
            stage = stages[index]
            if stage in self._patterns:
                msg = _carry(msg, await self.run(stage, 0, msg, send))
                continue
            return await send(stage, _tagged(msg, pattern, index))
        return msg.without(PATTERN_HEADER, STAGE_HEADER)


def entry_block(pattern: ManagerWorker | DivideConquer) -> str:
    """The block a pool or fan-out is entered at: its manager or its divider."""
    return pattern.manager if isinstance(pattern, ManagerWorker) else pattern.divide


def _carry(before: Message, after: Message) -> Message:
    """A nested pattern's output, keeping the request id and idempotency key it came with."""
    kept = {k: v for k in _CARRIED if k not in after.headers and (v := before.headers.get(k))}
    return after.replace(headers=kept) if kept else after


def _tagged(msg: Message, pattern: str, index: int) -> Message:
    return msg.replace(headers={PATTERN_HEADER: pattern, STAGE_HEADER: str(index)})
