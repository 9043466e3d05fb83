"""Checks across the spec that one field alone cannot make: names and nesting.

They run on the raw YAML data, defensively, so that they report alongside the
field errors instead of hiding behind them. Each pattern kind names blocks and
patterns in its own places (`_references`); some places take only a block
(a manager, a worker the manager balances over, a divider).

`check_warnings` runs on a valid spec: it finds settings that are legal one by
one but cannot work together (`eblocks validate` shows them as warnings).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eblocks.spec.models import MeshSpec
    from eblocks.spec.policies import Outlier

__all__ = ["check_references", "check_warnings"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Ref:
    """One name a pattern refers to, where it is, and whether a pattern may stand there."""

    name: Any
    loc: Loc
    pattern_ok: bool


def check_references(data: Mapping[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Yield (location, message) for every cross-reference problem."""
    blocks = _mapping(data.get("blocks"))
    patterns = {name: _references(p) for name, p in _mapping(data.get("patterns")).items()}
    for name in sorted(set(blocks) & set(patterns)):
        yield ("patterns", name), f"name {name!r} is used by a block and a pattern"
    known = ", ".join(sorted(set(blocks) | set(patterns)))
    for name, refs in patterns.items():
        for ref in refs:
            if not isinstance(ref.name, str):
                continue  # a field error, reported by the models
            loc: Loc = ("patterns", name, *ref.loc)
            if ref.name in patterns and not ref.pattern_ok:
                yield loc, f"{ref.loc[-1]} must be a block, not pattern {ref.name!r}"
            elif ref.name not in blocks and ref.name not in patterns:
                expected = known if ref.pattern_ok else ", ".join(sorted(blocks))
                what = "block or pattern" if ref.pattern_ok else "block"
                yield loc, f"unknown {what} {ref.name!r} (expected one of: {expected})"
    yield from _cycles(patterns)
    yield from _policy_references(_mapping(data.get("policies")), set(blocks), set(patterns))
    default_replicas = _mapping(data.get("defaults")).get("replicas", 1)
    for name, block in blocks.items():
        block = _mapping(block)
        replicas = block.get("replicas", default_replicas)
        if block.get("port") is not None and isinstance(replicas, int) and replicas > 1:
            yield ("blocks", name, "port"), f"a fixed port needs replicas: 1 (block has {replicas})"
        upstreams = _mapping(_mapping(block.get("external")).get("upstreams"))
        for target in upstreams:
            if isinstance(target, str) and target not in blocks and target not in patterns:
                yield (
                    ("blocks", name, "external", "upstreams", target),
                    f"unknown block or pattern {target!r} (expected one of: {known})",
                )
        yield from _gateway_references(name, _mapping(block.get("gateway")), blocks, patterns)
    yield from _access_logs(data, blocks)
    yield from _authorization(data, set(blocks), set(patterns))


def check_warnings(spec: MeshSpec) -> Iterator[tuple[Loc, str]]:
    """Yield (location, message) for what is valid but cannot work as written."""
    for name, policy in spec.policies.blocks.items():
        if policy.outlier is not None:
            yield from _success_rate(("policies", "blocks", name, "outlier"), policy.outlier)
    yield from _one_machine_ports(spec)
    end_user = spec.security.end_user
    if end_user is not None and end_user.audience is None:
        yield (
            ("security", "end_user"),
            "no audience: any token the provider signed is taken, whoever it was issued for "
            "(another app's included); set audience to this mesh's client id",
        )
    for index, rule in enumerate(spec.security.authorization.rules):
        for at, glob in enumerate(rule.source):
            plain = not glob.startswith(("client/", "spiffe://"))
            if plain and _GLOB.search(glob) and not any(fnmatchcase(b, glob) for b in spec.blocks):
                yield (
                    ("security", "authorization", "rules", index, "from", at),
                    f"{glob!r} matches no block of the spec (today: the rule "
                    f"{rule.name!r} matches no caller by it; clients are client/<glob>)",
                )


def _one_machine_ports(spec: MeshSpec) -> Iterator[tuple[Loc, str]]:
    """Fixed ports that `eblocks up` cannot bind on one machine (pods each have an address)."""
    taken: dict[tuple[str, int], str] = {}
    for name in sorted(spec.blocks):
        port = spec.blocks[name].port
        if port is None:
            continue
        other = taken.setdefault((spec.settings(name).host, port), name)
        if other != name:
            yield (
                ("blocks", name, "port"),
                f"block {other!r} asks for port {port} too: on one machine (`eblocks up`) "
                "only one of them can bind it (in Kubernetes each pod has its own address)",
            )
    instances = sum(spec.settings(name).replicas for name in spec.blocks)
    if spec.discovery.mode == "gossip" and spec.discovery.port and instances > 1:
        yield (
            ("discovery", "port"),
            f"every instance gossips on port {spec.discovery.port}: on one machine (`eblocks "
            f"up`, {instances} instances) only one can bind it; 0 takes a free port each",
        )


_GLOB = re.compile(r"[*?\[]")
_METHOD = re.compile(r"^[A-Za-z]+$")


def _authorization(
    data: Mapping[str, Any], blocks: set[str], patterns: set[str]
) -> Iterator[tuple[Loc, str]]:
    """Authorization rules name what can match: a typo in a deny rule would silently allow.

    Exact names are blocks (``to``, ``from``) or patterns; a ``to`` glob matches
    some block; a client has a name; a SPIFFE ID is of this trust domain and mesh
    (any other is refused with 401 before the rules); a method is a word; a path
    glob is absolute (paths are matched as a server reads them: absolute).
    """
    security = _mapping(data.get("security"))
    domain = security.get("trust_domain", "eblocks.local")
    own = f"spiffe://{domain}/mesh/{data.get('mesh')}/"
    rules = _mapping(security.get("authorization")).get("rules")
    names = ", ".join(sorted(blocks))
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        rule = _mapping(rule)
        at: Loc = ("security", "authorization", "rules", index)
        for field, value, check in (
            ("to", rule.get("to"), _authz_target),
            ("from", rule.get("from"), _authz_source),
            ("patterns", rule.get("patterns"), _authz_pattern),
            ("methods", rule.get("methods"), _authz_method),
            ("paths", rule.get("paths"), _authz_path),
        ):
            for item, entry in enumerate(value if isinstance(value, list) else []):
                if isinstance(entry, str):
                    message = check(entry, blocks, patterns, own, names)
                    if message is not None:
                        yield (*at, field, item), message


def _authz_target(
    glob: str, blocks: set[str], patterns: set[str], own: str, names: str
) -> str | None:
    if any(fnmatchcase(b, glob) for b in blocks):
        return None
    return f"{glob!r} matches no block (blocks: {names})"


def _authz_source(
    glob: str, blocks: set[str], patterns: set[str], own: str, names: str
) -> str | None:
    if glob.startswith("client/"):
        return None if glob != "client/" else "'client/' names no client: client/<name>"
    if glob.startswith("spiffe://"):
        head = glob.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        if own.startswith(head) or head.startswith(own):
            return None
        return (
            f"{glob!r} is not of this mesh ({own}...): a caller of another trust domain "
            "or mesh is refused before any rule, so the rule never matches it"
        )
    if _GLOB.search(glob) or glob in blocks:
        return None  # a glob that matches no block today is a warning (check_warnings)
    return f"no block {glob!r} (blocks: {names}; a caller that is not a block: client/<name>)"


def _authz_pattern(
    glob: str, blocks: set[str], patterns: set[str], own: str, names: str
) -> str | None:
    if _GLOB.search(glob) or glob in patterns:
        return None
    return f"no pattern {glob!r} (patterns: {', '.join(sorted(patterns)) or 'none'})"


def _authz_method(
    method: str, blocks: set[str], patterns: set[str], own: str, names: str
) -> str | None:
    return None if _METHOD.match(method) else f"{method!r} is no HTTP method (GET, POST, ...)"


def _authz_path(
    glob: str, blocks: set[str], patterns: set[str], own: str, names: str
) -> str | None:
    if glob.startswith(("/", "*")):
        return None
    return (
        f"{glob!r} never matches: paths are matched absolute, as a server reads them "
        f"(write '/{glob}')"
    )


def _success_rate(loc: Loc, rule: Outlier) -> Iterator[tuple[Loc, str]]:
    """A success-rate check that can never eject in the pools it judges.

    With n endpoints judged, the lowest success rate is at most sqrt(n - 1)
    standard deviations below the mean (one endpoint at 0 %, the others equal),
    and an endpoint is ejected only *more* than ``success_rate_stdev`` below it:
    pools of fewer than ``stdev^2 + 2`` endpoints are judged in vain.
    """
    stdev, hosts = rule.success_rate_stdev, rule.success_rate_min_hosts
    if stdev is None or stdev < math.sqrt(hosts - 1):
        return
    fewest = math.floor(stdev * stdev) + 2  # the smallest n with sqrt(n - 1) > stdev
    pools = str(hosts) if fewest - 1 == hosts else f"{hosts} to {fewest - 1}"
    below = math.floor(math.sqrt(hosts - 1) * 100) / 100
    field = "success_rate_min_hosts"
    if field not in rule.model_fields_set and "success_rate_stdev" in rule.model_fields_set:
        field = "success_rate_stdev"
    yield (
        (*loc, field),
        (
            f"success-rate ejection can never fire with {pools} hosts: with n endpoints the worst "
            f"is at most sqrt(n-1) stdevs below the mean ({below:g} with {hosts}), and "
            f"success_rate_stdev is {stdev:g}; set success_rate_min_hosts: {fewest} "
            f"(the fewest that can fire) or success_rate_stdev below {below:g}"
        ),
    )


def _access_logs(data: Mapping[str, Any], blocks: Mapping[str, Any]) -> Iterator[tuple[Loc, str]]:
    """No access log is asked for where ``telemetry.metrics: false`` leaves out its layers."""
    if _mapping(data.get("telemetry")).get("metrics") is not False:
        return
    why = "an access log is written by the per-request layers that 'telemetry.metrics: false' "
    if _mapping(data.get("defaults")).get("access_log") is True:
        yield ("defaults", "access_log"), why + "leaves out"
    for name, block in blocks.items():
        if _mapping(block).get("access_log") is True:
            yield ("blocks", name, "access_log"), why + "leaves out"


def _gateway_references(
    name: str, gateway: Mapping[str, Any], blocks: Mapping[str, Any], patterns: Mapping[str, Any]
) -> Iterator[tuple[Loc, str]]:
    """An ingress gateway's routes go to blocks or patterns that exist, never to itself."""
    routes = gateway.get("routes") if gateway.get("kind") == "ingress" else None
    known = ", ".join(sorted(n for n in [*blocks, *patterns] if n != name))
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        to = _mapping(route).get("to")
        loc: Loc = ("blocks", name, "gateway", "routes", i, "to")
        if to == name:
            yield loc, f"gateway {name!r} cannot route to itself"
        elif isinstance(to, str) and to not in blocks and to not in patterns:
            yield loc, f"unknown block or pattern {to!r} (expected one of: {known})"


def _policy_references(
    policies: Mapping[str, Any], blocks: set[str], patterns: set[str]
) -> Iterator[tuple[Loc, str]]:
    """Routes and block policies name blocks (and patterns) that exist; routes, once each."""
    names = ", ".join(sorted(blocks))

    def block(name: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
        if isinstance(name, str) and name not in blocks:
            yield loc, f"unknown block {name!r} (expected one of: {names})"

    routes = policies.get("routes")
    seen: dict[str, int] = {}
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        route = _mapping(route)
        loc: Loc = ("policies", "routes", i)
        name = route.get("name")
        if isinstance(name, str):
            if name in seen:
                yield (*loc, "name"), f"route name {name!r} is already used by route {seen[name]}"
            seen.setdefault(name, i)
        yield from block(route.get("to"), (*loc, "to"))
        destinations = route.get("destinations")
        for j, dest in enumerate(destinations if isinstance(destinations, list) else []):
            dest = _mapping(dest)
            yield from block(dest.get("block"), (*loc, "destinations", j, "block"))
            pattern = dest.get("pattern")
            if isinstance(pattern, str) and pattern not in patterns:
                known = ", ".join(sorted(patterns)) or "none declared"
                yield (
                    (*loc, "destinations", j, "pattern"),
                    (f"unknown pattern {pattern!r} (expected one of: {known})"),
                )
        yield from block(_mapping(route.get("mirror")).get("to"), (*loc, "mirror", "to"))
    for name in _mapping(policies.get("blocks")):
        yield from block(name, ("policies", "blocks", name))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _references(pattern: Any) -> list[_Ref]:
    """The names one pattern refers to, in YAML order, whatever its kind."""
    pattern = _mapping(pattern)
    refs: list[_Ref] = []
    stages = pattern.get("pipeline")
    if isinstance(stages, list):
        refs += [_Ref(stage, ("pipeline", i), True) for i, stage in enumerate(stages)]
    places = {
        "manager-worker": (("manager", False), ("worker", False)),
        "divide-conquer": (("divide", False), ("worker", True), ("combine", True)),
    }
    for kind, fields in places.items():
        body = _mapping(pattern.get(kind))
        refs += [_Ref(body[f], (kind, f), ok) for f, ok in fields if f in body]
    return refs


def _cycles(patterns: Mapping[str, list[_Ref]]) -> Iterator[tuple[Loc, str]]:
    """Report each pattern that reaches itself through nested patterns."""
    edges = {
        name: [r for r in refs if isinstance(r.name, str) and r.name in patterns]
        for name, refs in patterns.items()
    }
    for start in edges:
        path = _find_cycle(edges, start, [start])
        if path is not None:
            first = next(r for r in edges[start] if r.name == path[1])
            chain = " -> ".join(path)
            yield ("patterns", start, *first.loc), f"patterns nest in a cycle: {chain}"


def _find_cycle(edges: Mapping[str, list[_Ref]], name: str, path: list[str]) -> list[str] | None:
    for ref in edges[name]:
        if ref.name == path[0]:
            return [*path, ref.name]
        if ref.name in path:
            continue  # a cycle not through `path[0]`; reported from its own start
        found = _find_cycle(edges, ref.name, [*path, ref.name])
        if found is not None:
            return found
    return None
