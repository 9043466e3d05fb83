"""Durations and sizes as users write them in YAML ("250ms", "30s", "16MiB")."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

__all__ = [
    "DURATION_PATTERN",
    "SIZE_PATTERN",
    "TIMEOUT_PATTERN",
    "Duration",
    "Size",
    "Timeout",
    "parse_duration",
    "parse_size",
]

_DURATION_UNIT = r"(ms|s|m|h)?"
_SIZE_UNIT = r"(B|KB|KiB|MB|MiB|GB|GiB)?"
_DURATION = re.compile(rf"^\s*(\d+(?:\.\d+)?)\s*{_DURATION_UNIT}\s*$")
_NEGATIVE = re.compile(r"^\s*-\s*\d")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(rf"^\s*(\d+)\s*{_SIZE_UNIT}\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}

DURATION_PATTERN = _DURATION.pattern
"""The strings a duration accepts, for the JSON Schema: the parser's own grammar."""
SIZE_PATTERN = rf"^\s*0*[1-9]\d*\s*{_SIZE_UNIT}\s*$"
"""The strings a size accepts: the parser's grammar less the zero sizes `Size` refuses."""
TIMEOUT_PATTERN = rf"^\s*(?:\d*[1-9]\d*(?:\.\d+)?|\d+\.\d*[1-9]\d*)\s*{_DURATION_UNIT}\s*$"
"""The strings a `Timeout` accepts: the duration grammar less the zero durations."""


_A_DURATION = "a duration such as 250ms, 30s or 2m (units: ms, s, m, h; none: seconds)"
_A_SIZE = "a size such as 64KiB or 16MiB (units: B, KB, KiB, MB, MiB, GB, GiB; none: bytes)"


def parse_duration(value: object) -> object:
    """Seconds from a number or a string like ``250ms``, ``30s``, ``2m``, ``1h``."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_A_DURATION}, got a boolean")
    if _negative(value):
        raise ValueError(f"expected a duration of 0 or more, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected {_A_DURATION}, got {value!r}")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


def parse_size(value: object) -> object:
    """Bytes from an integer or a string like ``64KiB`` or ``16MiB``."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_A_SIZE}, got a boolean")
    if _negative(value):
        raise ValueError(f"expected a size of more than 0, got {value!r}")
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"expected {_A_SIZE}, got {value!r}")
        return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    return value


def _negative(value: object) -> bool:
    """``-1`` or ``-1s``: a sign, not a bad number or unit, is what is wrong."""
    if isinstance(value, int | float):
        return value < 0
    return isinstance(value, str) and _NEGATIVE.match(value) is not None


# JSON Schema's names of the bounds pydantic leaves under their Python names when
# they follow a validator (as here: the bound checks the parsed value, and an error
# still shows what the user wrote, "0MiB" rather than 0).
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


class _NumberOrString:
    """JSON Schema of a unit: the number it validates to, or a string with a unit.

    Serialization gives the plain number.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        number = {_BOUNDS.get(key, key): value for key, value in handler(core_schema).items()}
        if handler.mode == "serialization":
            return number
        return {"anyOf": [number, {"type": "string", "pattern": self.pattern}]}


class Timeout(_NumberOrString):
    """A duration of more than 0, for a deadline: ``Annotated[float, Timeout(unset)]``.

    A deadline of 0 has passed before anything starts (every call would fail), so
    0 and less are refused with ``must be more than 0 (unset)``: ``unset`` tells
    what leaving the field out gives instead.
    """

    def __init__(self, unset: str) -> None:
        super().__init__(TIMEOUT_PATTERN)
        self.refusal = f"must be more than 0 ({unset})"

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            self.parse, core_schema.float_schema(gt=0)
        )

    def parse(self, value: object) -> object:
        """Seconds, as `parse_duration` reads them; 0 and less are refused."""
        if _negative(value):
            raise ValueError(self.refusal)
        seconds = parse_duration(value)
        if isinstance(seconds, float) and seconds <= 0:
            raise ValueError(self.refusal)
        return seconds


Duration = Annotated[
    float, BeforeValidator(parse_duration), Field(ge=0), _NumberOrString(DURATION_PATTERN)
]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0), _NumberOrString(SIZE_PATTERN)]
