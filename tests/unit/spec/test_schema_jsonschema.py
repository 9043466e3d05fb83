"""`eblocks schema` is a standard JSON Schema that the project's own specs pass.

Editors and CI validate mesh.yaml with a JSON Schema library, not with pydantic:
durations and sizes must accept the strings users write ("10s", "16MiB"), and the
bounds must use JSON Schema's keywords, or such validators reject valid specs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from typer.testing import CliRunner

from eblocks.cli.app import app
from eblocks.spec.loader import load_spec
from eblocks.spec.models import Defaults
from eblocks.spec.units import DURATION_PATTERN, SIZE_PATTERN, TIMEOUT_PATTERN

ROOT = Path(__file__).resolve().parents[3]


def _is_mesh_spec(path: Path) -> bool:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(document, dict) and document.get("apiVersion") == "eblocks/v1"


EXAMPLE_SPECS = sorted(
    path
    for pattern in ("examples/**/*.yaml", "examples/**/*.yml")
    for path in ROOT.glob(pattern)
    if _is_mesh_spec(path)
)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """What `eblocks schema` prints."""
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert isinstance(printed, dict)
    return printed


def _subschema(schema: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    node = schema["$defs"][model]["properties"][field]
    assert isinstance(node, dict)
    return node


def test_the_examples_are_found() -> None:
    found = {path.relative_to(ROOT).as_posix() for path in EXAMPLE_SPECS}
    expected = {"examples/textpipe/mesh.yaml", "examples/hybrid/mesh.yaml"}
    assert expected | {"examples/docproc/mesh.yaml"} <= found


def test_the_schema_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_example_spec_passes_the_schema(schema: dict[str, Any], path: Path) -> None:
    load_spec(path)  # the spec is valid for eblocks itself ...
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(document)
    ]
    assert errors == []  # ... and for a JSON Schema validator


def _keyword_nodes(node: Any) -> list[dict[str, Any]]:
    """Every schema object below ``node`` (the maps of names to schemas left out)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, list):
        for item in node:
            found += _keyword_nodes(item)
    elif isinstance(node, dict):
        found.append(node)
        for key, value in node.items():
            if key in {"properties", "patternProperties", "$defs"} and isinstance(value, dict):
                for child in value.values():
                    found += _keyword_nodes(child)
            elif key not in {"default", "const", "enum", "examples"}:
                found += _keyword_nodes(value)
    return found


def test_no_pydantic_constraint_names_leak_into_the_schema(schema: dict[str, Any]) -> None:
    leaks = [node for node in _keyword_nodes(schema) if {"ge", "gt", "le", "lt"} & set(node)]
    assert leaks == []


def test_durations_and_sizes_are_numbers_or_strings_with_units(schema: dict[str, Any]) -> None:
    assert _subschema(schema, "Defaults", "drain")["anyOf"] == [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ]
    assert _subschema(schema, "Defaults", "timeout")["anyOf"] == [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": TIMEOUT_PATTERN},
    ]
    assert _subschema(schema, "Defaults", "max_body")["anyOf"] == [
        {"type": "integer", "exclusiveMinimum": 0},
        {"type": "string", "pattern": SIZE_PATTERN},
    ]
    assert _subschema(schema, "BlockSpec", "timeout")["anyOf"] == [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": TIMEOUT_PATTERN},
        {"type": "null"},
    ]
    # A field's own bound lands on the number, next to the unit's.
    horizon = _subschema(schema, "WorkersSpec", "horizon")["anyOf"][0]
    assert horizon == {"type": "number", "minimum": 0, "maximum": 600}


def _agree(schema: dict[str, Any], field: str, value: object) -> bool:
    """Whether the schema and the model accept ``value``; fails when they disagree."""
    by_schema = Draft202012Validator(_subschema(schema, "Defaults", field)).is_valid(value)
    try:
        Defaults.model_validate({field: value})
    except ValidationError:
        by_model = False
    else:
        by_model = True
    assert by_schema == by_model, f"schema says {by_schema}, model says {by_model}"
    return by_model


@pytest.mark.parametrize(
    "value",
    ["250ms", "10s", "1.5s", "2m", "1h", "7", "0.25", " 10 s ", "10s\n", "0s", 0, 5, 0.5],
)
def test_durations_the_parser_accepts_pass_the_schema(
    schema: dict[str, Any], value: object
) -> None:
    assert _agree(schema, "drain", value)


@pytest.mark.parametrize(
    "value", ["250ms", "10s", "1.5s", "0.5s", "00.1", "10.0s", "2m", " 10 s ", 5, 0.5]
)
def test_timeouts_above_zero_pass_the_schema(schema: dict[str, Any], value: object) -> None:
    assert _agree(schema, "timeout", value)


@pytest.mark.parametrize("value", ["0s", "0", "0ms", "00.00m", " 0 h ", 0, 0.0, "-1s", -1, "soon"])
def test_timeouts_of_zero_fail_the_schema_as_the_model(
    schema: dict[str, Any], value: object
) -> None:
    assert not _agree(schema, "timeout", value)


@pytest.mark.parametrize(
    "value",
    ["5 minutes", "ms", "-1s", "1d", "1.s", ".5s", "10S", "1e3s", "1,5s", "10 s s", "", -1, True],
)
def test_durations_the_parser_refuses_fail_the_schema(
    schema: dict[str, Any], value: object
) -> None:
    assert not _agree(schema, "drain", value)
    assert not _agree(schema, "timeout", value)


@pytest.mark.parametrize(
    "value", ["16MiB", "64KiB", "2GiB", "1KB", "512B", "100", " 8 KiB ", "01MB", 1, 4096]
)
def test_sizes_the_parser_accepts_pass_the_schema(schema: dict[str, Any], value: object) -> None:
    assert _agree(schema, "max_body", value)


@pytest.mark.parametrize(
    "value",
    ["0", "000", "0MiB", "1.5MiB", "16mib", "-1KB", "1TB", "lots", "", 0, -1, 1.5, False],
)
def test_sizes_the_model_refuses_fail_the_schema(schema: dict[str, Any], value: object) -> None:
    assert not _agree(schema, "max_body", value)
