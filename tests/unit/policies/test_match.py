"""Compiled request matchers: every kind of condition, and how they combine."""

from __future__ import annotations

import pytest

from eblocks.message import PATH_HEADER, Message
from eblocks.policies.match import (
    RequestView,
    compile_any,
    compile_match,
    match_all,
    view_of_message,
)
from eblocks.spec.policies import RouteMatch


def _view(
    path: str = "/", method: str = "POST", headers: dict[str, str] | None = None
) -> RequestView:
    return view_of_message(Message(b"", {PATH_HEADER: path, **(headers or {})}), method)


def test_a_message_without_a_path_is_a_post_to_the_root() -> None:
    view = view_of_message(Message(b"x"))
    assert (view.method, view.path, dict(view.query)) == ("POST", "/", {})


def test_path_and_query_come_from_the_path_header() -> None:
    view = _view("/docs/7?lang=en&draft=")
    assert view.path == "/docs/7"
    assert dict(view.query) == {"lang": "en", "draft": ""}


@pytest.mark.parametrize(
    ("condition", "path", "expected"),
    [
        ({"exact": "/a"}, "/a", True),
        ({"exact": "/a"}, "/a/b", False),
        ({"prefix": "/a"}, "/a/b", True),
        ({"prefix": "/a"}, "/b", False),
        ({"regex": "/docs/[0-9]+"}, "/docs/12", True),
        ({"regex": "/docs/[0-9]+"}, "/docs/12/x", False),  # whole-string match
    ],
)
def test_path_conditions(condition: dict[str, str], path: str, expected: bool) -> None:
    matcher = compile_match(RouteMatch.model_validate({"path": condition}))
    assert matcher(_view(path)) is expected


def test_every_condition_must_hold_and_header_names_are_case_free() -> None:
    match = RouteMatch.model_validate(
        {
            "methods": ["post"],
            "headers": {"X-Tenant": {"exact": "beta"}},
            "query": {"lang": {"prefix": "e"}},
        }
    )
    matcher = compile_match(match)
    assert matcher(_view("/?lang=en", headers={"x-tenant": "beta"}))
    assert not matcher(_view("/?lang=en", headers={"x-tenant": "alpha"}))
    assert not matcher(_view("/?lang=fr", headers={"x-tenant": "beta"}))
    assert not matcher(_view("/?lang=en"))  # an absent header never matches
    assert not matcher(_view("/?lang=en", method="GET", headers={"x-tenant": "beta"}))


def test_empty_and_absent_matches_match_everything() -> None:
    assert compile_match(None) is match_all
    assert compile_match(RouteMatch()) is match_all
    assert compile_any(()) is match_all
    assert compile_any((RouteMatch(), RouteMatch.model_validate({"methods": ["GET"]}))) is match_all


def test_any_of_several_matches() -> None:
    matcher = compile_any(
        (
            RouteMatch.model_validate({"path": {"prefix": "/a"}}),
            RouteMatch.model_validate({"headers": {"x-b": {"exact": "1"}}}),
        )
    )
    assert matcher(_view("/a/1"))
    assert matcher(_view("/z", headers={"x-b": "1"}))
    assert not matcher(_view("/z"))
