"""The JSON Schema of the spec, for editors and the generated reference."""

from __future__ import annotations

from typing import Any

from eblocks.spec.models import MeshSpec

__all__ = ["json_schema"]

SCHEMA_ID = "https://eblocks.dev/schema/eblocks-v1.json"


def json_schema() -> dict[str, Any]:
    schema = MeshSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Eblocks mesh spec (eblocks/v1)"
    return schema
