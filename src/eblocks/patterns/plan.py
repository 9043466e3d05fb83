"""Compile the spec's patterns into a plan the blocks and clients walk.

A pipeline is a list of stages; a stage is a block or (nested) another
pattern. Walking from stage ``i``: nested patterns run to completion in turn
and their output feeds the next stage; the first block stage met receives the
message tagged with (pattern, stage) and takes over — it handles, then walks
on from ``i + 1`` itself. The last stage's output returns up the chain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from eblocks.errors import BadRequestError
from eblocks.message import PATTERN_HEADER, STAGE_HEADER, Message
from eblocks.spec.models import MeshSpec

__all__ = ["Plan", "SendTo"]

SendTo = Callable[[str, Message], Awaitable[Message]]
"""Send a message to one block (through the client stack)."""


class Plan:
    """The compiled patterns of one mesh."""

    __slots__ = ("_stages",)

    def __init__(self, stages: Mapping[str, tuple[str, ...]]) -> None:
        self._stages = dict(stages)

    @classmethod
    def from_spec(cls, spec: MeshSpec) -> Plan:
        return cls({name: pattern.stages for name, pattern in spec.patterns.items()})

    def __contains__(self, name: object) -> bool:
        return name in self._stages

    def stages(self, pattern: str) -> tuple[str, ...]:
        return self._stages[pattern]

    def locate(self, pattern: str, stage: str, block: str) -> int:
        """Check that ``block`` is stage ``stage`` of ``pattern``; return the index."""
        if pattern not in self._stages:
            raise BadRequestError(f"unknown pattern {pattern!r} in {PATTERN_HEADER}")
        try:
            index = int(stage)
        except ValueError:
            raise BadRequestError(f"{STAGE_HEADER} must be an integer, got {stage!r}") from None
        stages = self._stages[pattern]
        if not 0 <= index < len(stages) or stages[index] != block:
            raise BadRequestError(
                f"stage {index} of pattern {pattern!r} is not block {block!r}",
                detail={"pattern": pattern, "stage": index},
            )
        return index

    async def run(self, pattern: str, start: int, msg: Message, send: SendTo) -> Message:
        """Walk ``pattern`` from stage ``start``; return the pattern's output."""
        stages = self._stages[pattern]
        for index in range(start, len(stages)):
            stage = stages[index]
            if stage in self._stages:
                msg = await self.run(stage, 0, msg, send)
                continue
            tagged = msg.replace(headers={PATTERN_HEADER: pattern, STAGE_HEADER: str(index)})
            return await send(stage, tagged)
        return msg.without(PATTERN_HEADER, STAGE_HEADER)
