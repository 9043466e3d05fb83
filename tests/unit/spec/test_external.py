"""``external`` blocks: programs of any language behind the sidecar (docs/sidecar.md)."""

from __future__ import annotations

import pytest

from eblocks.errors import SpecError, SpecIssue
from eblocks.spec import parse_spec
from eblocks.spec.models import ExternalSpec

HEAD = "apiVersion: eblocks/v1\nmesh: m\n"


def issues_of(text: str) -> tuple[SpecIssue, ...]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "mesh.yaml")
    return info.value.issues


def test_an_external_block_loads_with_its_defaults() -> None:
    spec = parse_spec(
        HEAD + "blocks:\n  db:\n    external: {command: [postgres, -p, '5432'], port: 5432}\n"
    )
    external = spec.blocks["db"].external
    assert external == ExternalSpec(command=("postgres", "-p", "5432"), port=5432)
    assert external.protocol == "http"
    assert external.upstreams == {}
    assert spec.blocks["db"].handler is None


def test_external_and_handler_together_are_refused_at_the_block() -> None:
    text = HEAD + "blocks:\n  a:\n    handler: h:a\n    external: {command: [x], port: 1}\n"
    (issue,) = issues_of(text)
    assert (issue.path, issue.line) == ("blocks.a", 5)
    assert issue.message == "set exactly one of 'handler', 'app', 'external' or 'gateway'"


def test_an_external_block_needs_a_command_and_a_port() -> None:
    issues = issues_of(HEAD + "blocks:\n  a:\n    external: {command: [], protocol: udp}\n")
    found = {(i.path, i.line) for i in issues}
    assert ("blocks.a.external.command", 5) in found
    assert ("blocks.a.external", 5) in found  # a missing field: its parent
    assert ("blocks.a.external.protocol", 5) in found


def test_upstream_ports_are_checked() -> None:
    text = HEAD + (
        "blocks:\n  b: {handler: h:b}\n  c: {handler: h:c}\n  a:\n    external:\n"
        "      command: [x]\n      port: 80\n      upstreams: {b: 80}\n"
    )
    (issue,) = issues_of(text)
    assert issue.path == "blocks.a.external"
    assert issue.message == "upstream 'b' uses the program's own port 80"
    (issue,) = issues_of(text.replace("{b: 80}", "{b: 81, c: 81}"))
    assert issue.message == "two upstreams share a local port"


def test_an_upstream_must_name_a_block_or_pattern_and_points_at_its_line() -> None:
    text = HEAD + (
        "blocks:\n  b: {handler: h:b}\n  a:\n    external:\n      command: [x]\n"
        "      port: 80\n      upstreams:\n        nope: 81\n"
    )
    (issue,) = issues_of(text)
    assert issue.path == "blocks.a.external.upstreams.nope"
    assert issue.line == 10
    assert issue.message == "unknown block or pattern 'nope' (expected one of: a, b)"


def test_a_manager_that_is_external_gets_no_relay_handler() -> None:
    spec = parse_spec(
        HEAD
        + "blocks:\n  m:\n    external: {command: [x], port: 80}\n  w: {handler: h:w}\n"
        + "patterns:\n  p: {manager-worker: {manager: m, worker: w}}\n"
    )
    assert spec.blocks["m"].handler is None
