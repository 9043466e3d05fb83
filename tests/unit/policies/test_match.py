"""Compiled request matchers: every kind of condition, and how they combine."""

from __future__ import annotations

import pytest

from eblocks.message import PATH_HEADER, Message
from eblocks.policies.match import (
    RequestView,
    compile_any,
    compile_match,
    compile_message_any,
    compile_message_match,
    every_message,
    match_all,
    message_applies,
    no_message,
    view_applies,
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


MATCHES = [
    {},
    {"methods": ["POST"]},
    {"methods": ["GET"]},
    {"methods": ["GET", "POST"], "path": {"prefix": "/docs"}},
    {"path": {"prefix": "/"}},
    {"path": {"exact": "/"}},
    {"path": {"regex": "/docs/[0-9]+"}},
    {"headers": {"X-Tenant": {"exact": "beta"}}},
    {"headers": {"x-tenant": {"prefix": "b"}, "x-chaos": {"exact": "1"}}},
    {"path": {"prefix": "/docs"}, "headers": {"x-tenant": {"regex": "a.*"}}, "methods": ["POST"]},
    {"query": {"lang": {"exact": "en"}}},
    {"query": {"lang": {"prefix": "e"}}, "path": {"exact": "/docs/7"}},
]
MESSAGES = [
    {},
    {PATH_HEADER: "/"},
    {PATH_HEADER: ""},
    {PATH_HEADER: "?lang=en"},
    {PATH_HEADER: "docs"},
    {PATH_HEADER: "/docs/7?lang=en&draft="},
    {PATH_HEADER: "/docs/7x", "x-tenant": "beta"},
    {PATH_HEADER: "/docs", "x-tenant": "alpha", "x-chaos": "1"},
    {"x-tenant": "beta", "x-chaos": "1"},
    {"x-tenant": "b", "x-chaos": "0"},
]


@pytest.mark.parametrize("headers", MESSAGES)
def test_a_message_matcher_answers_as_the_matcher_does_on_the_messages_view(
    headers: dict[str, str],
) -> None:
    message = Message(b"", headers)
    view = view_of_message(message)
    matches = [RouteMatch.model_validate(m) for m in MATCHES]
    for match in matches:
        assert compile_message_match(match)(message) is compile_match(match)(view), match
    for first in matches:
        for second in matches:
            both = (first, second)
            assert compile_message_any(both)(message) is compile_any(both)(view), both
    get = view_of_message(message, "GET")
    for match in matches:
        assert compile_message_match(match, "GET")(message) is compile_match(match)(get), match


def test_message_matchers_that_always_or_never_hold_are_recognisable() -> None:
    assert compile_message_match(None) is every_message
    assert compile_message_match(RouteMatch()) is every_message
    assert compile_message_any(()) is every_message
    get_only = RouteMatch.model_validate({"methods": ["GET"]})
    assert compile_message_any((RouteMatch(), get_only)) is every_message
    assert compile_message_match(get_only) is no_message  # a mesh call is a POST
    assert compile_message_any((get_only, get_only)) is no_message


class _Rule:
    def __init__(self, match: RouteMatch) -> None:
        self.matches = compile_match(match)
        self.matches_message = compile_message_match(match)


def test_applies_asks_the_rule_and_builds_one_view_at_most() -> None:
    tenant = _Rule(RouteMatch.model_validate({"headers": {"x-tenant": {"exact": "beta"}}}))
    docs = _Rule(RouteMatch.model_validate({"path": {"prefix": "/docs"}}))
    message = Message(b"", {PATH_HEADER: "/docs/1", "x-tenant": "alpha"})
    on_message = message_applies(message)
    assert (on_message(tenant), on_message(docs)) == (False, True)
    built: list[RequestView] = []

    def view() -> RequestView:
        built.append(view_of_message(message))
        return built[-1]

    on_view = view_applies(view)
    assert (on_view(tenant), on_view(docs)) == (False, True)
    assert len(built) == 1
