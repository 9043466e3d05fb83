"""Request matching for routes, rate limits, bulkheads and faults: compiled once per version.

A `RouteMatch` from the spec becomes a `Matcher`, a plain predicate over a
`RequestView` (method, path, query, lower-case headers). Regexes are compiled
when the policy version is built, never per request; a match with no
conditions is `match_all`, which the layers can recognise and skip.

A call between blocks is a ``POST``; its path and query come from the
``x-eblocks-path`` header when the caller sets one, else ``/``
(`view_of_message`). An app block's inbound request is matched on the real
method, path and query (`RequestView` built from the aiohttp request).

The same matches also compile to a `MessageMatcher`, a predicate over a mesh
call's `Message` that gives the answer the `Matcher` gives on its view
without building one (`compile_message_any`): the method is known when it is
compiled, headers are read from the message, and the path is split off its
header only when a condition looks at it. The route layer and the inbound
layers of a block use these on every call; a rule that applies to some
requests and not others says which through an `Applies` predicate
(`message_applies`, `view_applies`), so its layer's code is the same for both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

from eblocks.message import PATH_HEADER, Message
from eblocks.spec.policies import RouteMatch, StringMatch

__all__ = [
    "Applies",
    "Matcher",
    "MessageMatcher",
    "RequestView",
    "Rule",
    "call_path",
    "compile_any",
    "compile_match",
    "compile_message_any",
    "compile_message_match",
    "compile_string",
    "every_message",
    "match_all",
    "message_applies",
    "no_message",
    "view_applies",
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


MessageMatcher = Callable[[Message], bool]
"""A compiled condition over one mesh call (a ``POST``, its path in ``x-eblocks-path``)."""


def every_message(_message: Message) -> bool:
    """The `MessageMatcher` of an empty match (and of no match at all)."""
    return True


def no_message(_message: Message) -> bool:
    """The `MessageMatcher` of matches that no mesh call can meet (other methods only)."""
    return False


def view_of_message(message: Message, method: str = "POST") -> RequestView:
    """The request a mesh call is: ``method``, and path/query from ``x-eblocks-path``."""
    target = message.headers.get(PATH_HEADER) or "/"
    path, _, raw_query = target.partition("?")
    query = dict(parse_qsl(raw_query, keep_blank_values=True)) if raw_query else {}
    return RequestView(method, path or "/", query, message.headers)


def call_path(headers: Mapping[str, str]) -> str:
    """The path a mesh call is for: ``view_of_message(...).path`` (its ``x-eblocks-path``
    without the query, else ``/``), without the query or the view; lower-case names."""
    return (headers.get(PATH_HEADER) or "/").partition("?")[0] or "/"


def _path_of(message: Message) -> str:
    return call_path(message.headers)


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


def compile_message_match(match: RouteMatch | None, method: str = "POST") -> MessageMatcher:
    """`compile_match` for mesh calls: ``compile_match(match)(view_of_message(m, method))``."""
    if match is None:
        return every_message
    if match.methods and method not in match.methods:
        return no_message
    if match.query:  # rare on mesh calls: parse the path header as the view does
        on_view = compile_match(match)
        return lambda message: on_view(view_of_message(message, method))
    checks: list[MessageMatcher] = []
    if match.path is not None:
        checks.append(_path(match.path))
    for name, condition in match.headers.items():
        checks.append(_header(name, compile_string(condition)))
    return _all_of(checks)


def compile_message_any(matches: Sequence[RouteMatch], method: str = "POST") -> MessageMatcher:
    """`compile_any` for mesh calls: any of ``matches`` holds; none at all means every call."""
    if not matches:
        return every_message
    compiled = [compile_message_match(m, method) for m in matches]
    if every_message in compiled:
        return every_message
    compiled = [m for m in compiled if m is not no_message]
    if not compiled:
        return no_message
    if len(compiled) == 1:
        return compiled[0]
    return lambda message: any(check(message) for check in compiled)


class Rule(Protocol):
    """A compiled policy rule that applies to the requests its match selects."""

    @property
    def matches(self) -> Matcher: ...

    @property
    def matches_message(self) -> MessageMatcher: ...


Applies = Callable[[Rule], bool]
"""Whether a rule whose match is not `match_all` applies to the request at hand."""


def message_applies(message: Message) -> Applies:
    """`Applies` for a mesh call: each rule's `MessageMatcher`, no view built."""
    return lambda rule: rule.matches_message(message)


def view_applies(view: Callable[[], RequestView]) -> Applies:
    """`Applies` for a request seen as a `RequestView`, built on first need and kept."""
    seen: list[RequestView] = []

    def applies(rule: Rule) -> bool:
        if not seen:
            seen.append(view())
        return rule.matches(seen[0])

    return applies


def _all_of(checks: list[MessageMatcher]) -> MessageMatcher:
    if not checks:
        return every_message
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda message: first(message) and second(message)
    return lambda message: all(check(message) for check in checks)


def _path(condition: StringMatch) -> MessageMatcher:
    """A path condition over a mesh call: `compile_string` on `_path_of`, one call less."""
    if condition.exact is not None:
        exact = condition.exact
        return lambda message: _path_of(message) == exact
    if condition.prefix is not None:
        prefix = condition.prefix
        return lambda message: _path_of(message).startswith(prefix)
    on_path = compile_string(condition)
    return lambda message: on_path(_path_of(message))


def _header(name: str, check: Callable[[str], bool]) -> MessageMatcher:
    def matches(message: Message) -> bool:
        value = message.headers.get(name)
        return value is not None and check(value)

    return matches


def _field(name: str, check: Callable[[str], bool], *, headers: bool) -> Matcher:
    def matches(view: RequestView) -> bool:
        value = (view.headers if headers else view.query).get(name)
        return value is not None and check(value)

    return matches
