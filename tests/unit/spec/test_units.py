"""Durations and sizes as written in YAML."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from eblocks.spec.models import Defaults, RetryPolicy
from eblocks.spec.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        (" 10 s ", 10.0),
        ("7", 7.0),
        (5, 5.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    result = parse_duration(text)
    assert isinstance(result, float)
    assert result == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 minutes", "ms", "1d", "1.s", ""])
def test_parse_duration_rejects_with_the_legal_units(text: str) -> None:
    message = (
        "expected a duration such as 250ms, 30s or 2m (units: ms, s, m, h; none: seconds), "
        f"got {text!r}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_duration(text)


@pytest.mark.parametrize("value", ["-1s", " -250ms", "-1", -1, -0.5])
def test_parse_duration_says_a_negative_is_below_the_bound(value: object) -> None:
    message = f"expected a duration of 0 or more, got {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_duration(value)


def test_parse_duration_rejects_booleans() -> None:
    with pytest.raises(ValueError, match="got a boolean"):
        parse_duration(True)


def test_parse_duration_leaves_other_types_to_pydantic() -> None:
    marker = object()
    assert parse_duration(marker) is marker


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64KiB", 64 * 1024),
        ("16MiB", 16 * 1024**2),
        ("2GiB", 2 * 1024**3),
        ("1KB", 1000),
        ("3MB", 3_000_000),
        ("1GB", 10**9),
        ("512B", 512),
        ("100", 100),
        (" 8 KiB ", 8192),
        (4096, 4096),
    ],
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["1.5MiB", "16mib", "lots", "1TB"])
def test_parse_size_rejects_with_the_legal_units(text: str) -> None:
    message = (
        "expected a size such as 64KiB or 16MiB (units: B, KB, KiB, MB, MiB, GB, GiB; "
        f"none: bytes), got {text!r}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_size(text)


@pytest.mark.parametrize("value", ["-1KB", "-1", -4096])
def test_parse_size_says_a_negative_is_below_the_bound(value: object) -> None:
    message = f"expected a size of more than 0, got {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_size(value)


def test_parse_size_rejects_booleans() -> None:
    with pytest.raises(ValueError, match="got a boolean"):
        parse_size(False)


def test_units_in_models() -> None:
    defaults = Defaults.model_validate({"timeout": "250ms", "max_body": "1MiB", "drain": 2})
    assert defaults.timeout == pytest.approx(0.25)
    assert defaults.max_body == 1024**2
    assert defaults.drain == 2.0
    policy = RetryPolicy.model_validate({"backoff": "10ms", "max_backoff": "1s"})
    assert policy.backoff == pytest.approx(0.01)
    assert policy.max_backoff == 1.0


@pytest.mark.parametrize(
    "fields", [{"timeout": -1}, {"max_body": 0}, {"max_body": "0KiB"}, {"timeout": "soon"}]
)
def test_models_reject_out_of_range_units(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Defaults.model_validate(fields)
