"""Policies that are valid but cannot work as written: warnings, never errors.

A route listed after a route that matches every call to the same ``to`` is
never reached (routes are tried in order and the first match wins). "Every
call" is what the route layer itself skips matching for (`every_message`): no
``match``, an empty list, or a match with no condition a mesh call can fail
(none at all, or only ``methods`` that include ``POST``, the method of every
call between blocks). Sticky and subset routes are no exception.

`unreachable_routes` yields ``(location, message)`` pairs, as the spec's own
checks do, so a caller places them with the loader's line marks.
"""

from __future__ import annotations

from collections.abc import Iterator

from eblocks.policies.match import compile_message_any, every_message
from eblocks.spec.policies import Policies, Route

__all__ = ["matches_every_call", "unreachable_routes"]

Loc = tuple[str | int, ...]


def matches_every_call(route: Route) -> bool:
    """Whether ``route`` matches every call to its ``to``, as the route layer matches it."""
    return compile_message_any(route.match) is every_message


def unreachable_routes(policies: Policies) -> Iterator[tuple[Loc, str]]:
    """Each route that an earlier match-all route of the same ``to`` keeps from matching.

    ``(("policies", "routes", 1), "'beta' is never reached: routes[0] 'canary' matches
    every call to 'store'")``
    """
    catch_all: dict[str, tuple[int, str]] = {}  # to -> (index, name) of its first match-all
    for index, route in enumerate(policies.routes):
        earlier = catch_all.get(route.to)
        if earlier is not None:
            first, name = earlier
            yield (
                ("policies", "routes", index),
                f"{route.name!r} is never reached: routes[{first}] {name!r} matches every "
                f"call to {route.to!r}",
            )
        elif matches_every_call(route):
            catch_all[route.to] = (index, route.name)
