"""The policies in force in one process, swapped as a whole while it runs.

`PolicyState` is one immutable, versioned set of `Policies` with its lookups
precomputed; `LivePolicies` holds the current one. Every policy layer keeps a
reference to the `LivePolicies` and reads ``live.current`` once per request,
so a new version (`eblocks apply`) takes effect between two requests and no
request ever sees half of one version and half of another. Layers that keep
state (breakers, buckets, budgets) key it by the rule it belongs to and keep
it across versions while that rule is unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from eblocks.spec.policies import BlockPolicy, Policies, Route

__all__ = ["EMPTY_BLOCK", "LivePolicies", "PolicyState", "digest_of"]

EMPTY_BLOCK = BlockPolicy()
"""The policy of a block the policies say nothing about."""


def digest_of(policies: Policies) -> str:
    """A stable SHA-256 of the policies (canonical JSON): equal policies, equal digest."""
    data = orjson.dumps(policies.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyState:
    """One version of the policies, with per-target lookups done once."""

    version: int
    policies: Policies
    digest: str
    _routes: Mapping[str, tuple[Route, ...]] = field(repr=False)

    @classmethod
    def of(cls, policies: Policies, version: int = 0) -> PolicyState:
        routes: dict[str, list[Route]] = {}
        for route in policies.routes:
            routes.setdefault(route.to, []).append(route)
        return cls(
            version,
            policies,
            digest_of(policies),
            {target: tuple(found) for target, found in routes.items()},
        )

    def routes(self, target: str) -> tuple[Route, ...]:
        """The routes for calls to ``target``, in spec order (first match wins)."""
        return self._routes.get(target, ())

    def block(self, name: str) -> BlockPolicy:
        """The policies about block ``name`` (empty when there are none)."""
        return self.policies.blocks.get(name, EMPTY_BLOCK)


class LivePolicies:
    """The `PolicyState` in force; `swap` replaces it atomically (one attribute store)."""

    __slots__ = ("_listeners", "current")

    def __init__(self, state: PolicyState) -> None:
        self.current = state
        self._listeners: list[Callable[[PolicyState, PolicyState], None]] = []

    @classmethod
    def of(cls, policies: Policies, version: int = 0) -> LivePolicies:
        return cls(PolicyState.of(policies, version))

    def on_swap(self, listener: Callable[[PolicyState, PolicyState], None]) -> None:
        """Call ``listener(old, new)`` after each swap (e.g. to reset a rule's state)."""
        self._listeners.append(listener)

    def swap(self, state: PolicyState) -> bool:
        """Put ``state`` in force if it is newer; False (and no change) if it is not."""
        old = self.current
        if state.version <= old.version:
            return False
        self.current = state
        for listener in self._listeners:
            listener(old, state)
        return True
