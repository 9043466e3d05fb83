"""The `balancer` setting: validated against the known names, inherited, overridden."""

from __future__ import annotations

import pytest

from eblocks.errors import SpecError
from eblocks.spec import parse_spec

SPEC = """\
apiVersion: eblocks/v1
mesh: m
defaults:
  balancer: p2c
blocks:
  a: {handler: h:a}
  b: {handler: h:b, balancer: maglev}
"""


def test_block_inherits_or_overrides_the_default_balancer() -> None:
    spec = parse_spec(SPEC)
    assert spec.settings("a").balancer == "p2c"
    assert spec.settings("b").balancer == "maglev"


def test_round_robin_is_the_default() -> None:
    spec = parse_spec("apiVersion: eblocks/v1\nmesh: m\nblocks:\n  a: {handler: h:a}\n")
    assert spec.settings("a").balancer == "round_robin"


def test_unknown_balancer_is_named_with_its_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC.replace("maglev", "fastest"))
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (7, "blocks.b.balancer")
    assert "'ewma'" in issue.message
    assert "fastest" in issue.message
