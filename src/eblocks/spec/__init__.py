"""The mesh spec: models, loading with line numbers, JSON Schema.

The names below are imported on first use (PEP 562): `eblocks.spec.units`
and the other light modules of this package can be imported without the
models (the CLI starts without them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

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

_HOME = {
    "load_spec": "eblocks.spec.loader",
    "parse_spec": "eblocks.spec.loader",
    "json_schema": "eblocks.spec.schema",
}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module 'eblocks.spec' has no attribute {name!r}")
    value = getattr(import_module(_HOME.get(name, "eblocks.spec.models")), name)
    globals()[name] = value
    return value
