"""Settings that are legal one by one but useless as written: refused, or a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eblocks.cli import app as cli
from eblocks.errors import SpecIssue
from eblocks.spec import parse_spec
from eblocks.spec.models import MeshSpec
from eblocks.spec.policies import Outlier, Route

from .issues import HEAD, issues_of, only_issue

BLOCKS = "blocks:\n  store: {handler: h:store}\n"


def warnings_of(text: str) -> list[SpecIssue]:
    found: list[SpecIssue] = []
    parse_spec(text, "mesh.yaml", warnings=found)
    return found


# -- timeouts: 0 has passed before the first try ----------------------------------------


@pytest.mark.parametrize("value", ["0s", "0", "0ms", "0.0", "-1s"])
def test_a_route_timeout_of_zero_is_refused(value: str) -> None:
    text = HEAD + BLOCKS + f"policies:\n  routes:\n    - {{name: r, to: store, timeout: {value}}}\n"
    issue = only_issue(text)
    assert (issue.line, issue.column) == (7, 37)
    assert issue.path == "policies.routes[0].timeout"
    assert issue.message == "must be more than 0 (leave it out for the block's timeout)"


def test_a_route_per_try_timeout_of_zero_is_refused() -> None:
    text = HEAD + BLOCKS + "policies:\n  routes:\n    - name: r\n      to: store\n"
    issue = only_issue(text + "      per_try_timeout: 0s\n")
    assert (issue.line, issue.column) == (9, 24)
    assert issue.path == "policies.routes[0].per_try_timeout"
    assert issue.message == (
        "must be more than 0 (leave it out and only the call's timeout bounds a try)"
    )


@pytest.mark.parametrize(
    ("text", "path", "unset"),
    [
        ("defaults: {timeout: 0s}\n" + BLOCKS, "defaults.timeout", "30s"),
        ("defaults: {ready_timeout: 0}\n" + BLOCKS, "defaults.ready_timeout", "30s"),
        (
            "blocks:\n  store: {handler: h:store, timeout: 0ms}\n",
            "blocks.store.timeout",
            "defaults.timeout",
        ),
        (
            "blocks:\n  store:\n    external: {command: [x], port: 9000, ready_timeout: 0s}\n",
            "blocks.store.external.ready_timeout",
            "defaults.ready_timeout",
        ),
        (
            "blocks:\n  store: {handler: h:store}\n  gw:\n    gateway:\n      kind: ingress\n"
            "      routes: [{name: r, to: store, timeout: 0s}]\n",
            "blocks.gw.gateway.routes[0].timeout",
            "the target's timeout",
        ),
        (
            "blocks:\n  gw:\n    gateway: {kind: egress, allow: [{host: x}], timeout: 0s}\n",
            "blocks.gw.gateway.timeout",
            "30s",
        ),
    ],
)
def test_every_timeout_of_zero_is_refused_saying_what_leaving_it_out_gives(
    text: str, path: str, unset: str
) -> None:
    # (an ingress gateway's route list also says "at least 1 item": pydantic's, not ours)
    (issue,) = [i for i in issues_of(HEAD + text) if i.path == path]
    assert issue.line > 0
    assert issue.message == f"must be more than 0 (leave it out for {unset})"


def test_durations_where_zero_means_none_still_take_zero() -> None:
    spec = parse_spec(
        HEAD
        + "defaults: {drain: 0s}\n"
        + "blocks:\n  store: {handler: h:store, drain: 0, retries: {backoff: 0s}}\n"
    )
    assert spec.defaults.drain == 0.0
    assert spec.settings("store").drain == 0.0
    assert spec.settings("store").retries.backoff == 0.0


def test_timeouts_above_zero_load_as_seconds() -> None:
    text = HEAD + BLOCKS + "policies:\n  routes:\n    - name: r\n      to: store\n"
    spec = parse_spec(text + "      timeout: 2s\n      per_try_timeout: 1ms\n")
    (route,) = spec.policies.routes
    assert (route.timeout, route.per_try_timeout) == (2.0, 0.001)


# -- retries: only error statuses are retried ----------------------------------------


def test_retried_statuses_outside_400_to_599_are_refused_each_at_its_item() -> None:
    text = HEAD + "blocks:\n  store:\n    handler: h:store\n    retries: {on: [200, 999, 404]}\n"
    ok, big = issues_of(text)
    assert (ok.line, ok.column, ok.path) == (6, 20, "blocks.store.retries.on[0]")
    assert ok.message == "expected an error status, 400..599, got 200"
    assert (big.line, big.column, big.path) == (6, 25, "blocks.store.retries.on[1]")
    assert big.message == "expected an error status, 400..599, got 999"


@pytest.mark.parametrize("status", ["true", "'200'", "99", "600"])
def test_retried_statuses_of_other_forms_are_refused_too(status: str) -> None:
    text = HEAD + BLOCKS + f"defaults:\n  retries: {{on: [503, {status}]}}\n"
    issue = only_issue(text)
    assert issue.path == "defaults.retries.on[1]"
    assert issue.message.startswith("expected an error status, 400..599, got ")


def test_error_statuses_are_retried() -> None:
    spec = parse_spec(HEAD + BLOCKS + "defaults:\n  retries: {on: [400, 429, 599]}\n")
    assert spec.defaults.retries.on == (400, 429, 599)


# -- a route is to a block ---------------------------------------------------------------


def test_the_route_docs_say_to_is_a_block_as_validation_does() -> None:
    doc = Route.__doc__ or ""
    assert "or pattern" not in doc
    assert "block ``to``" in doc
    text = HEAD + BLOCKS + "patterns:\n  p: {pipeline: [store]}\n"
    issue = only_issue(text + "policies:\n  routes:\n    - {name: r, to: p}\n")
    assert issue.path == "policies.routes[0].to"
    assert issue.message == "unknown block 'p' (expected one of: store)"


# -- success-rate ejection that can never fire ----------------------------------------


def outlier_spec(body: str) -> str:
    return HEAD + BLOCKS + f"policies:\n  blocks:\n    store:\n      outlier: {body}\n"


def test_the_default_outlier_rule_can_eject_from_the_fewest_hosts_it_judges() -> None:
    rule = Outlier()
    assert rule.success_rate_min_hosts == 5  # Envoy's default, with its 1.9
    assert rule.success_rate_stdev is not None
    assert rule.success_rate_stdev < (rule.success_rate_min_hosts - 1) ** 0.5
    assert warnings_of(outlier_spec("{}")) == []


def test_stdev_too_high_for_min_hosts_warns_at_min_hosts_with_what_would_fire() -> None:
    (warning,) = warnings_of(outlier_spec("{success_rate_stdev: 1.9, success_rate_min_hosts: 3}"))
    assert (warning.file, warning.line, warning.column) == ("mesh.yaml", 8, 66)
    assert warning.path == "policies.blocks.store.outlier.success_rate_min_hosts"
    assert warning.message == (
        "success-rate ejection can never fire with 3 to 4 hosts: with n endpoints the worst is "
        "at most sqrt(n-1) stdevs below the mean (1.41 with 3), and success_rate_stdev is 1.9; "
        "set success_rate_min_hosts: 5 (the fewest that can fire) or success_rate_stdev below "
        "1.41"
    )


def test_a_stdev_set_alone_is_the_field_warned_about() -> None:
    (warning,) = warnings_of(outlier_spec("{success_rate_stdev: 2}"))  # 2 = sqrt(5 - 1)
    assert warning.path == "policies.blocks.store.outlier.success_rate_stdev"
    assert (warning.line, warning.column) == (8, 37)
    assert warning.message.startswith("success-rate ejection can never fire with 5 hosts: ")
    assert "set success_rate_min_hosts: 6 " in warning.message


@pytest.mark.parametrize(
    "body",
    [
        "{success_rate_stdev: 1.0, success_rate_min_hosts: 3}",  # 1.0 < 1.41
        "{success_rate_stdev: 1.9, success_rate_min_hosts: 5}",  # 1.9 < 2
        "{success_rate_stdev: null, success_rate_min_hosts: 2}",  # no success-rate check
    ],
)
def test_a_rule_that_can_fire_gives_no_warning(body: str) -> None:
    assert warnings_of(outlier_spec(body)) == []


def test_warnings_are_only_collected_when_asked_for() -> None:
    spec = parse_spec(outlier_spec("{success_rate_min_hosts: 3}"), "mesh.yaml")
    assert isinstance(spec, MeshSpec)  # valid: a warning is no error


def test_validate_prints_the_warnings_with_their_place(tmp_path: Path) -> None:
    spec = tmp_path / "mesh.yaml"
    outlier = "{success_rate_stdev: 1.9, success_rate_min_hosts: 3}"
    spec.write_text(f"{HEAD}{BLOCKS}policies:\n  blocks:\n    store:\n      outlier: {outlier}\n")
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 0, result.output  # valid: a warning does not fail it
    text = " ".join(result.output.split())
    assert f"warning: {spec}:8:66: policies.blocks.store.outlier.success_rate_min_hosts:" in text
    assert "success-rate ejection can never fire with 3 to 4 hosts" in text


AUTHZ = HEAD + BLOCKS + "patterns:\n  flow: {pipeline: [store]}\nsecurity:\n  authorization:\n"


@pytest.mark.parametrize(
    ("rule", "field", "says"),
    [
        ("{name: r, action: deny, to: [stroe]}", "to[0]", "'stroe' matches no block (blocks:"),
        ("{name: r, action: deny, to: ['st*x']}", "to[0]", "'st*x' matches no block"),
        ("{name: r, action: deny, from: [legcy]}", "from[0]", "no block 'legcy' (blocks: store;"),
        ("{name: r, action: deny, from: [client/]}", "from[0]", "'client/' names no client"),
        (
            "{name: r, action: deny, from: ['spiffe://other.example/mesh/m/block/*']}",
            "from[0]",
            "is not of this mesh (spiffe://eblocks.local/mesh/m/...)",
        ),
        ("{name: r, action: deny, patterns: [flwo]}", "patterns[0]", "no pattern 'flwo'"),
        ("{name: r, action: deny, methods: [P0ST]}", "methods[0]", "'P0ST' is no HTTP method"),
        ("{name: r, action: deny, paths: ['admin/*']}", "paths[0]", "write '/admin/*'"),
    ],
)
def test_an_authorization_rule_that_can_never_match_is_refused(
    rule: str, field: str, says: str
) -> None:
    """A typo in a deny rule would silently allow: it is an error, at its place."""
    issue = only_issue(f"{AUTHZ}    rules:\n      - {rule}\n")
    assert issue.path == f"security.authorization.rules[0].{field}"
    assert issue.line == 10
    assert says in issue.message


def test_authorization_rules_that_can_match_load() -> None:
    rules = [
        "{name: a, action: deny, from: ['legacy-*', client/cli, store], to: ['st*']}",
        "{name: b, action: allow, from: ['spiffe://eblocks.local/mesh/m/block/*']}",
        "{name: c, action: allow, patterns: [flow, 'f*'], methods: [get], paths: ['/a/*', '*']}",
    ]
    text = AUTHZ + "    rules:\n" + "".join(f"      - {r}\n" for r in rules)
    (warning,) = warnings_of(text)  # a glob that matches no block today is only a warning
    assert warning.path == "security.authorization.rules[0].from[0]"
    assert "'legacy-*' matches no block of the spec" in warning.message


def test_validate_warns_of_a_route_that_is_never_reached(tmp_path: Path) -> None:
    spec = tmp_path / "mesh.yaml"
    routes = (
        "policies:\n  routes:\n"
        "    - {name: canary, to: store, destinations: [{block: store, weight: 100}]}\n"
        "    - name: beta\n      to: store\n      match: [{headers: {x-beta: {exact: '1'}}}]\n"
        "      destinations: [{block: store, weight: 100}]\n"
    )
    spec.write_text(HEAD + BLOCKS + routes)
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"warning: {spec}:8:7: policies.routes[1]: 'beta' is never reached: routes[0]" in text


def test_fixed_ports_one_machine_cannot_bind_twice_are_warnings() -> None:
    text = (
        HEAD
        + "discovery: {mode: gossip, port: 47946}\n"
        + "blocks:\n  a: {handler: h:a, port: 47813}\n  b: {handler: h:b, port: 47813}\n"
    )
    found = {w.path: w.message for w in warnings_of(text)}
    assert "block 'a' asks for port 47813 too" in found["blocks.b.port"]
    assert "every instance gossips on port 47946" in found["discovery.port"]
    assert warnings_of(HEAD + BLOCKS) == []


def test_end_user_tokens_without_an_audience_are_a_warning() -> None:
    text = HEAD + BLOCKS + "security:\n  end_user: {jwks_file: jwks.json, issuer: https://idp}\n"
    (warning,) = warnings_of(text)
    assert warning.path == "security.end_user"
    assert "no audience: any token the provider signed is taken" in warning.message
    assert warnings_of(text.replace("issuer:", "audience: mesh, issuer:")) == []
