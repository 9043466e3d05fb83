"""The authorization engine: spec rules -> an allow/deny `Decision` (pure).

Evaluation, the same at every block and in `eblocks policy check`::

    any deny rule matches  -> deny  (that rule)
    any allow rule matches -> allow (that rule)
    otherwise              -> the target block's default, else the mesh's

A rule matches when every field it sets matches (fields it leaves out match
anything). ``from`` globs are tried against the caller's block name, against
``client/<name>`` for a client identity, and against the full SPIFFE ID; a
caller without a verified identity (plaintext, mTLS permissive) matches only a
rule without ``from``.

A decision depends only on the request's facts, so the engine remembers the
last few thousand (a block sees few distinct callers and routes); claims are
part of the key only when some rule looks at them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from eblocks.security.svid import Identity
from eblocks.spec.models import AuthzRule, MeshSpec

__all__ = ["Decision", "PolicyEngine", "RequestFacts"]

_REMEMBERED = 4096  # decisions kept per engine; all forgotten at once when full


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What authorization looks at."""

    target: str
    source: Identity | None = None
    method: str = "POST"
    path: str = "/"
    pattern: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why: the rule that decided, or ``default``."""

    allowed: bool
    rule: str
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class PolicyEngine:
    """The rules of one mesh, with each block's default."""

    def __init__(self, spec: MeshSpec) -> None:
        authz = spec.security.authorization
        self._deny = tuple(r for r in authz.rules if r.action == "deny")
        self._allow = tuple(r for r in authz.rules if r.action == "allow")
        self._defaults = {
            name: (block.security.default if block.security and block.security.default else None)
            or authz.default
            for name, block in spec.blocks.items()
        }
        self._mesh_default = authz.default
        self.trivial = not authz.rules and set(self._defaults.values()) == {"allow"}
        self._uses_claims = any(rule.claims for rule in authz.rules)
        self._decided: dict[tuple[str, Identity | None, str, str, str | None], Decision] = {}

    def authorize(self, facts: RequestFacts) -> Decision:
        if facts.claims and self._uses_claims:
            return self._decide(facts)
        key = (facts.target, facts.source, facts.method, facts.path, facts.pattern)
        decision = self._decided.get(key)
        if decision is None:
            decision = self._decide(facts)
            if len(self._decided) >= _REMEMBERED:
                self._decided.clear()
            self._decided[key] = decision
        return decision

    def _decide(self, facts: RequestFacts) -> Decision:
        for rule in self._deny:
            if _matches(rule, facts):
                return Decision(False, rule.name, f"denied by rule {rule.name!r}")
        for rule in self._allow:
            if _matches(rule, facts):
                return Decision(True, rule.name, f"allowed by rule {rule.name!r}")
        default = self._defaults.get(facts.target, self._mesh_default)
        where = f"block {facts.target!r}" if facts.target in self._defaults else "the mesh"
        return Decision(
            default == "allow", "default", f"no rule matched; {where} defaults to {default}"
        )


def _names(source: Identity) -> tuple[str, ...]:
    short = source.name if source.kind == "block" else f"client/{source.name}"
    return (short, str(source))


def _matches(rule: AuthzRule, facts: RequestFacts) -> bool:
    if rule.source:
        if facts.source is None:
            return False
        names = _names(facts.source)
        if not any(fnmatchcase(n, g) for g in rule.source for n in names):
            return False
    if rule.to and not any(fnmatchcase(facts.target, g) for g in rule.to):
        return False
    if rule.patterns and not (
        facts.pattern is not None and any(fnmatchcase(facts.pattern, g) for g in rule.patterns)
    ):
        return False
    if rule.methods and facts.method.upper() not in {m.upper() for m in rule.methods}:
        return False
    if rule.paths and not any(fnmatchcase(facts.path, g) for g in rule.paths):
        return False
    for claim, glob in rule.claims.items():
        value = facts.claims.get(claim)
        values = value if isinstance(value, list) else [value]
        if not any(v is not None and fnmatchcase(str(v), glob) for v in values):
            return False
    return True
