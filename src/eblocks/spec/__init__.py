"""The mesh spec: models, loading with line numbers, JSON Schema."""

from eblocks.spec.loader import load_spec, parse_spec
from eblocks.spec.models import (
    BlockSettings,
    BlockSpec,
    Defaults,
    DiscoverySpec,
    MeshSpec,
    PatternSpec,
    PipelineSpec,
    Policies,
    RetryPolicy,
)
from eblocks.spec.schema import json_schema

__all__ = [
    "BlockSettings",
    "BlockSpec",
    "Defaults",
    "DiscoverySpec",
    "MeshSpec",
    "PatternSpec",
    "PipelineSpec",
    "Policies",
    "RetryPolicy",
    "json_schema",
    "load_spec",
    "parse_spec",
]
