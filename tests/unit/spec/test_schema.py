"""The JSON Schema of the spec."""

from __future__ import annotations

import json

from eblocks.spec import json_schema
from eblocks.spec.schema import SCHEMA_ID


def test_schema_declares_its_dialect_and_id() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert "eblocks/v1" in schema["title"]


def test_schema_has_blocks_and_patterns() -> None:
    schema = json_schema()
    props = schema["properties"]
    assert {"apiVersion", "mesh", "blocks", "patterns", "defaults", "policies"} <= set(props)
    assert "api_version" not in props  # fields appear as users write them
    assert set(schema["required"]) == {"apiVersion", "mesh", "blocks"}
    assert list(props["blocks"]["patternProperties"].values()) == [{"$ref": "#/$defs/BlockSpec"}]
    patterns = list(props["patterns"]["patternProperties"].values())
    kinds = [{"$ref": f"#/$defs/{k}Spec"} for k in ("Pipeline", "ManagerWorker", "DivideConquer")]
    assert patterns == [{"oneOf": kinds}]


def test_schema_forbids_unknown_fields() -> None:
    defs = json_schema()["$defs"]
    assert defs["BlockSpec"]["additionalProperties"] is False
    assert "handler" in defs["BlockSpec"]["properties"]
    assert "pipeline" in defs["PipelineSpec"]["properties"]


def test_schema_is_json() -> None:
    schema = json_schema()
    assert json.loads(json.dumps(schema)) == schema
