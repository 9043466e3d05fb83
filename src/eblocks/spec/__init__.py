"""The mesh spec: models, loading with line numbers, JSON Schema.

The names below are imported on first use (PEP 562): `eblocks.spec.units`
and the other light modules of this package can be imported without the
models (the CLI starts without them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eblocks._lazy import lazy_exports

if TYPE_CHECKING:
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

_HOME = dict.fromkeys(__all__, "models") | {
    "load_spec": "loader",
    "parse_spec": "loader",
    "json_schema": "schema",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
