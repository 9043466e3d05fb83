"""What the inbound policy layers share: who is asking, and the state they keep per rule.

The layers that enforce a block's own policies (rate limits, bulkheads,
faults; `eblocks.layers`) need:

- the **source** of a request: the caller's verified SPIFFE ID under mTLS,
  else the block named by ``x-eblocks-source``, else ``unknown``
  (`source_of`); overrides match it by glob against its full form and its
  short form (``store``, ``client/cli``), as authorization rules do
  (`source_names`);
- a **key** per rule that survives a new policy version in which the rule is
  unchanged (`rule_keys`), so a bucket or a counter is kept, not reset, by
  an `eblocks apply` that touched something else;
- a **per-version cache** (`PerVersion`): the layer's compiled form of the
  rules is rebuilt only when ``live.current`` is another `PolicyState`, and
  the rebuild sees the previous form to carry state over. Reading it is one
  attribute load and one identity test, so a block without policies pays
  next to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel

from eblocks.policies import LivePolicies, PolicyState

__all__ = [
    "UNKNOWN_SOURCE",
    "PerVersion",
    "glob_match",
    "rule_keys",
    "source_names",
    "source_of",
]

UNKNOWN_SOURCE = "unknown"
"""The source of a request with neither a verified identity nor ``x-eblocks-source``."""

T = TypeVar("T")
_SPIFFE = "spiffe://"


def source_of(peer: str | None, headers: Mapping[str, str]) -> str:
    """The identity a request comes from: verified peer, else the source header, else unknown."""
    if peer:
        return peer
    return headers.get("x-eblocks-source") or UNKNOWN_SOURCE


def source_names(source: str) -> tuple[str, ...]:
    """The names a source glob may match: the short name first, then the full identity.

    ``spiffe://td/mesh/m/block/store`` -> ``("store", "spiffe://td/mesh/m/block/store")``;
    ``.../client/cli`` -> ``("client/cli", ...)``; a plain block name is itself.
    """
    if not source.startswith(_SPIFFE):
        return (source,)
    parts = source[len(_SPIFFE) :].split("/")
    if len(parts) == 5 and parts[1] == "mesh":
        kind, name = parts[3], parts[4]
        return (name if kind == "block" else f"{kind}/{name}", source)
    return (source,)


def glob_match(source: str, globs: Iterable[str]) -> bool:
    """Whether any of ``globs`` (fnmatch, case-sensitive) matches a name of ``source``."""
    names = source_names(source)
    return any(fnmatchcase(name, glob) for glob in globs for name in names)


def rule_keys(rules: Iterable[BaseModel]) -> list[str]:
    """A stable key per rule: its canonical JSON, and its rank among identical rules."""
    seen: dict[str, int] = {}
    keys: list[str] = []
    for rule in rules:
        text = orjson.dumps(rule.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()
        rank = seen.get(text, 0)
        seen[text] = rank + 1
        keys.append(f"{rank}:{text}")
    return keys


class PerVersion(Generic[T]):
    """A value compiled from the current policy version, rebuilt when the version changes.

    ``build(state, previous)`` gets the previous value so state can be carried
    over. Read with ``cache.value if cache.state is live.current else cache.refresh()``.
    """

    __slots__ = ("_build", "live", "state", "value")

    def __init__(
        self, live: LivePolicies, build: Callable[[PolicyState, T], T], initial: T
    ) -> None:
        self.live = live
        self._build = build
        self.state: PolicyState | None = None
        self.value = initial

    def get(self) -> T:
        return self.value if self.state is self.live.current else self.refresh()

    def refresh(self) -> T:
        state = self.live.current
        self.value = self._build(state, self.value)
        self.state = state
        return self.value
