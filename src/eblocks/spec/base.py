"""What every spec model shares: the frozen base and the name type."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Frozen", "Name"]

Name = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9-]{0,62}$",
        description="lower-case letters, digits and '-', starting with a letter (a DNS label)",
    ),
]


class Frozen(BaseModel):
    """Immutable, and unknown keys are errors (a typo never passes silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
