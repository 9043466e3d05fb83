"""`eblocks diff` rendering: rules by name, field paths with old -> new, restart-only changes."""

from __future__ import annotations

from eblocks.policies.diff import (
    Change,
    FieldChange,
    diff_policies,
    flatten,
    render,
    spec_changes,
)
from eblocks.spec import MeshSpec, parse_spec
from eblocks.spec.policies import Policies

from .conftest import SPEC


def policies(text: str) -> Policies:
    return parse_spec(SPEC.split("policies:")[0] + text, "mesh.yaml").policies


NEW = """\
policies:
  routes:
    - name: canary
      to: store
      destinations: [{subset: {version: v1}, weight: 80}, {subset: {version: v2}, weight: 20}]
      timeout: 2s
    - name: shadow
      to: front
      mirror: {to: store, percent: 5}
  blocks:
    front:
      rate_limits: [{rate: 100}]
"""


def test_flatten_names_every_leaf() -> None:
    assert flatten({"a": {"b": [{"c": 1}], "d": [1, 2], "e": {}}}) == {
        "a.b[0].c": 1,
        "a.d": [1, 2],
        "a.e": {},
    }
    assert flatten({}) == {}


def test_no_change_is_an_empty_diff(spec: MeshSpec) -> None:
    assert diff_policies(spec.policies, spec.policies) == []


def test_changed_added_and_removed_rules(spec: MeshSpec) -> None:
    changes = diff_policies(spec.policies, policies(NEW))
    assert [(c.kind, c.what, c.name) for c in changes] == [
        ("changed", "route", "canary"),
        ("added", "route", "shadow"),
        ("removed", "block", "store"),
        ("added", "block", "front"),
    ]
    assert render(changes) == [
        "~ route canary",
        "    destinations[0].weight: 90 -> 80",
        "    destinations[1].weight: 10 -> 20",
        "    timeout: (unset) -> 2.0",
        "+ route shadow",
        "    mirror.max_inflight: 64",
        "    mirror.percent: 5.0",
        "    mirror.to: 'store'",
        "    to: 'front'",
        "- block store",
        "    bulkhead.max_concurrent: 64",
        "+ block front",
        "    rate_limits[0].per: 'block'",
        "    rate_limits[0].rate: 100.0",
    ]


def test_a_new_order_of_the_same_routes_is_a_change() -> None:
    two = "policies:\n  routes:\n    - {name: a, to: store}\n    - {name: b, to: front}\n"
    swapped = "policies:\n  routes:\n    - {name: b, to: front}\n    - {name: a, to: store}\n"
    changes = diff_policies(policies(two), policies(swapped))
    assert changes == [
        Change("changed", "order", "routes", (FieldChange("routes", "a, b", "b, a"),))
    ]
    assert render(changes) == ["~ route order (first match wins)", "    routes: 'a, b' -> 'b, a'"]


def test_fields_that_appear_or_go_within_a_rule(spec: MeshSpec) -> None:
    text = SPEC.replace("bulkhead: {max_concurrent: 64}", "faults: [{abort: {percent: 5}}]")
    changes = diff_policies(spec.policies, parse_spec(text, "m.yaml").policies)
    assert render(changes) == [
        "~ block store",
        "    bulkhead.max_concurrent: 64 -> (unset)",
        "    faults[0].abort.percent: (unset) -> 5.0",
        "    faults[0].abort.status: (unset) -> 503",
    ]


def test_spec_changes_outside_the_policies_need_a_restart(spec: MeshSpec) -> None:
    text = SPEC.replace("replicas: 2", "replicas: 3").replace("weight: 90", "weight: 50")
    assert spec_changes(spec, parse_spec(text, "m.yaml")) == ["blocks.store.replicas"]
    assert spec_changes(spec, spec) == []


def test_a_block_or_pattern_added_or_removed_is_one_line(spec: MeshSpec) -> None:
    added = SPEC.replace(
        "  store: {handler: m:s,",
        "  store-v4: {handler: m:s4, replicas: 2, labels: {version: v4}}\n  store: {handler: m:s,",
    )
    removed = SPEC.replace("patterns:\n  flow: {pipeline: [front, store]}\n", "")
    assert removed != SPEC
    assert added != SPEC
    assert spec_changes(spec, parse_spec(added, "m.yaml")) == ["blocks.store-v4 (added)"]
    assert spec_changes(parse_spec(added, "m.yaml"), spec) == ["blocks.store-v4 (removed)"]
    assert spec_changes(spec, parse_spec(removed, "m.yaml")) == ["patterns.flow (removed)"]
    assert spec_changes(parse_spec(removed, "m.yaml"), spec) == ["patterns.flow (added)"]
    both = added.replace("replicas: 2, labels: {version: v1}", "replicas: 3, labels: {version: v1}")
    assert spec_changes(spec, parse_spec(both.replace("mesh: shop", "mesh: shop2"), "m.yaml")) == [
        "blocks.store-v4 (added)",
        "blocks.store.replicas",
        "mesh",
    ]
