"""A small spec with policies, and a policy key pair in a temporary state dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from eblocks.policies.keys import ensure_signing_key
from eblocks.spec import MeshSpec, parse_spec

SPEC = """\
apiVersion: eblocks/v1
mesh: shop
blocks:
  front: {handler: m:f}
  store: {handler: m:s, replicas: 2, labels: {version: v1}}
patterns:
  flow: {pipeline: [front, store]}
policies:
  routes:
    - name: canary
      to: store
      destinations: [{subset: {version: v1}, weight: 90}, {subset: {version: v2}, weight: 10}]
  blocks:
    store:
      bulkhead: {max_concurrent: 64}
"""


@pytest.fixture
def spec() -> MeshSpec:
    return parse_spec(SPEC, "mesh.yaml")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    ensure_signing_key(tmp_path)
    return tmp_path
