"""Generate docs/spec-reference.md from the spec's JSON Schema.

Run `make docs` after changing src/eblocks/spec/models.py; a unit test fails
when the committed reference is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from eblocks.spec import json_schema
from eblocks.spec.units import DURATION_PATTERN, SIZE_PATTERN, TIMEOUT_PATTERN

OUT = Path(__file__).resolve().parent.parent / "docs" / "spec-reference.md"
HEADER = """# Spec reference (`eblocks/v1`)

Generated from the JSON Schema by `make docs` (`scripts/gen_spec_reference.py`);
do not edit by hand. `eblocks schema` prints the schema itself, for editors.
Durations are seconds or strings such as `250ms`, `30s`, `2m`; sizes are bytes or
strings such as `64KiB`, `16MiB`.
"""
UNITS = {DURATION_PATTERN: "duration", SIZE_PATTERN: "size", TIMEOUT_PATTERN: "duration"}


def _unit(options: list[dict[str, Any]]) -> str | None:
    """`duration` or `size` for a number-or-string-with-a-unit, None for anything else."""
    for option in options:
        if option.get("type") == "string" and option.get("pattern") in UNITS:
            return UNITS[option["pattern"]]
    return None


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        return _unit(options) or " or ".join(_type(p) for p in options)
    if "oneOf" in prop:  # a tagged union: exactly one of the models
        return "one of " + ", ".join(_type(p) for p in prop["oneOf"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object" and "patternProperties" in prop:
        (value,) = prop["patternProperties"].values()
        return f"map of name → {_type(value)}"
    if kind == "object" and "additionalProperties" in prop:
        return f"map of name → {_type(prop['additionalProperties'])}"
    return str(kind)


def _default(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in prop:
        return ""
    value = prop["default"]
    if isinstance(value, dict | list) or value in (None, ""):
        return "" if not value else "see type"
    return f"`{value}`"


def _section(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", "", schema.get("description", "").strip(), ""]
    props = schema.get("properties", {})
    if not props:
        return [*lines, "No fields yet.", ""]
    lines += ["| field | type | default | description |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for field, prop in props.items():
        desc = prop.get("description", "").replace("\n", " ")
        inner = next((p for p in prop.get("anyOf", []) if p.get("type") != "null"), prop)
        keys = (
            "minimum",
            "exclusiveMinimum",
            "maximum",
            "exclusiveMaximum",
            "minLength",
            "minItems",
            "minProperties",
        )
        constraints = [f"{k} {inner[k]}" for k in keys if k in inner]
        if "pattern" in inner:
            constraints.append(f"pattern `{inner['pattern']}`")
        if constraints:
            desc = f"{desc} ({', '.join(constraints)})".strip()
        row = [f"`{field}`", _type(prop), _default(prop, field in required), desc]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def render() -> str:
    schema = json_schema()
    lines = [HEADER, *_section("MeshSpec", schema)]
    for name, definition in sorted(schema.get("$defs", {}).items()):
        lines += _section(name, definition)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
