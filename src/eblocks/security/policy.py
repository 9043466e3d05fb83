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

``paths`` and ``methods`` match the request a call is *for*, where the
target block's own inbound policies (routes, faults) take it: at a block that
takes messages (a handler, an egress gateway) the path is the caller's
``x-eblocks-path`` without its query, else ``/`` (`call_path`, the routes'
`view_of_message`); at an application block (``app:``, an ingress gateway)
the real HTTP path; behind the sidecar (``external:``, HTTP) the method and
path the program is asked for (`eblocks.policies.target.request_target`).
Paths are matched as a server reads them (`normal_path`: absolute, slashes
merged, percent-escapes decoded, ``.`` and ``..`` resolved), so
``/x/../admin/y`` and ``//admin/y`` are ``/admin/y``.
`Auth.admit` takes them so (`served_as`); `check`, behind ``eblocks policy
check``, decides with the same engine on the path the call is for.

A decision depends only on the request's facts, so the engine remembers the
last few thousand (a block sees few distinct callers and routes); claims are
part of the key only when some rule looks at them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from eblocks.errors import IdentityError
from eblocks.message import PATH_HEADER
from eblocks.policies.match import call_path
from eblocks.policies.target import Served, normal_path
from eblocks.security.svid import Identity
from eblocks.spec.models import AuthzRule, MeshSpec

__all__ = [
    "Decision",
    "PolicyEngine",
    "RequestFacts",
    "Served",
    "caller_of",
    "check",
    "served_as",
]

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


def served_as(spec: MeshSpec, block: str | None) -> Served:
    """How ``block`` takes requests, as `eblocks.runtime.instance` builds it.

    ``messages``: a handler or an egress gateway (a call's path is its
    ``x-eblocks-path``); ``app``: an ``app:`` block or an ingress gateway (the
    real HTTP request); ``sidecar``: an ``external:`` HTTP program behind the
    proxy. A name the spec does not have (a test's `Block`) takes messages.
    """
    spec_block = spec.blocks.get(block) if block is not None else None
    if spec_block is None or spec_block.handler is not None:
        return "messages"
    if spec_block.gateway is not None:
        return "app" if spec_block.gateway.kind == "ingress" else "messages"
    if spec_block.external is not None:
        return "sidecar"
    return "app" if spec_block.app is not None else "messages"


def caller_of(spec: MeshSpec, source: str) -> Identity:
    """The caller ``source`` names: a block of ``spec``, ``client/<name>``, or a SPIFFE ID.

    A SPIFFE ID must be of the spec's trust domain and mesh (a block refuses
    any other with 401 before authorization) and, for a block, name one of
    its blocks. Anything else raises `IdentityError` saying what is legal.
    """
    domain, mesh = spec.security.trust_domain, spec.mesh
    if source.startswith("spiffe://"):
        caller = Identity.parse(source)
        if (caller.trust_domain, caller.mesh) != (domain, mesh):
            raise IdentityError(
                f"{source!r} is not of trust domain {domain!r} mesh {mesh!r} "
                "(a block refuses such a caller with 401, before any rule)"
            )
    elif source.startswith("client/"):
        client = Identity(domain, mesh, source.removeprefix("client/"), "client")
        caller = Identity.parse(str(client))  # the name must be one a certificate can carry
    else:
        caller = Identity(domain, mesh, source)
    if caller.kind == "block" and caller.name not in spec.blocks:
        raise IdentityError(
            f"no block {caller.name!r} (blocks: {', '.join(sorted(spec.blocks))}; "
            "a caller that is not a block: client/<name>)"
        )
    return caller


def check(
    spec: MeshSpec,
    caller: Identity | None,
    target: str,
    *,
    method: str = "POST",
    path: str = "/",
    pattern: str | None = None,
    claims: Mapping[str, Any] | None = None,
) -> Decision:
    """What ``target`` decides for a call from ``caller`` for ``method`` and ``path``.

    ``path`` is the path the call is for, as `Auth.admit` takes it at the
    target: a mesh call's ``x-eblocks-path`` (its query dropped as there), an
    application block's real path. The engine is the blocks' own.
    """
    facts = RequestFacts(
        target,
        caller,
        method.upper(),
        normal_path(call_path({PATH_HEADER: path})),
        pattern,
        claims if claims is not None else {},
    )
    return PolicyEngine(spec).authorize(facts)
