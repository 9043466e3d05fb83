"""What the spec tests share: a minimal head, and the issues a text is refused with."""

from __future__ import annotations

import pytest

from eblocks.errors import SpecError, SpecIssue
from eblocks.spec import parse_spec

HEAD = "apiVersion: eblocks/v1\nmesh: m\n"


def issues_of(text: str) -> tuple[SpecIssue, ...]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "mesh.yaml")
    return info.value.issues


def only_issue(text: str) -> SpecIssue:
    issues = issues_of(text)
    assert len(issues) == 1, issues
    return issues[0]
