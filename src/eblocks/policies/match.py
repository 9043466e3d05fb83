"""Request matching for routes, rate limits, bulkheads and faults: compiled once per version.

A `RouteMatch` from the spec becomes a `Matcher`, a plain predicate over a
`RequestView` (method, path, query, lower-case headers). Regexes are compiled
when the policy version is built, never per request; a match with no
conditions is `match_all`, which the layers can recognise and skip.

A call between blocks is a ``POST``; its path and query come from the
``x-eblocks-path`` header when the caller sets one, else ``/``
(`view_of_message`). An app block's inbound request is matched on the real
method, path and query (`RequestView` built from the aiohttp request).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from eblocks.message import PATH_HEADER, Message
from eblocks.spec.policies import RouteMatch, StringMatch

__all__ = [
    "Matcher",
    "RequestView",
    "compile_any",
    "compile_match",
    "compile_string",
    "match_all",
    "view_of_message",
]


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a match looks at. ``headers`` have lower-case names; ``query`` is parsed."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


Matcher = Callable[[RequestView], bool]
"""A compiled condition over one request."""


def match_all(_view: RequestView) -> bool:
    """The matcher of an empty match (and of no match at all)."""
    return True


def view_of_message(message: Message, method: str = "POST") -> RequestView:
    """The request a mesh call is: ``method``, and path/query from ``x-eblocks-path``."""
    target = message.headers.get(PATH_HEADER) or "/"
    path, _, raw_query = target.partition("?")
    query = dict(parse_qsl(raw_query, keep_blank_values=True)) if raw_query else {}
    return RequestView(method, path or "/", query, message.headers)


def compile_string(condition: StringMatch) -> Callable[[str], bool]:
    """A predicate over one string: exact, prefix or whole-string regex."""
    if condition.exact is not None:
        exact = condition.exact
        return lambda value: value == exact
    if condition.prefix is not None:
        prefix = condition.prefix
        return lambda value: value.startswith(prefix)
    pattern = re.compile(condition.regex or "")
    return lambda value: pattern.fullmatch(value) is not None


def compile_match(match: RouteMatch | None) -> Matcher:
    """One `RouteMatch` as a predicate: all of its conditions hold (absent header: no match)."""
    if match is None:
        return match_all
    checks: list[Matcher] = []
    if match.methods:
        methods = frozenset(match.methods)
        checks.append(lambda view: view.method in methods)
    if match.path is not None:
        on_path = compile_string(match.path)
        checks.append(lambda view: on_path(view.path))
    for name, condition in match.headers.items():
        checks.append(_field(name, compile_string(condition), headers=True))
    for name, condition in match.query.items():
        checks.append(_field(name, compile_string(condition), headers=False))
    if not checks:
        return match_all
    if len(checks) == 1:
        return checks[0]
    return lambda view: all(check(view) for check in checks)


def compile_any(matches: Sequence[RouteMatch]) -> Matcher:
    """Any of ``matches`` holds; no matches at all means every request."""
    compiled = [compile_match(m) for m in matches]
    if not compiled or match_all in compiled:
        return match_all
    if len(compiled) == 1:
        return compiled[0]
    return lambda view: any(check(view) for check in compiled)


def _field(name: str, check: Callable[[str], bool], *, headers: bool) -> Matcher:
    def matches(view: RequestView) -> bool:
        value = (view.headers if headers else view.query).get(name)
        return value is not None and check(value)

    return matches
