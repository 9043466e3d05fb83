"""Authorization: the pure engine, a deny over real mTLS, and `eblocks policy check`."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from eblocks import Context, Message, UpstreamError
from eblocks.security import Identity, PolicyEngine, RequestFacts

from .secmesh import SecureMesh, make_spec

RULES = """
security:
  authorization:
    default: deny
    rules:
      - {name: no-legacy, action: deny, from: ["legacy-*"]}
      - {name: cli-to-front, action: allow, from: [client/cli], to: [front]}
      - {name: front-to-back, action: allow, from: [front], to: [back], methods: [POST]}
      - {name: admins, action: allow, to: [back], paths: ["/admin/*"], claims: {role: admin}}
      - {name: any-ok, action: allow, from: ["spiffe://eblocks.local/mesh/sec/block/*"],
         to: [open]}
"""
BLOCKS = """  open: {handler: "tests:x", security: {default: allow}}
  legacy-a: {handler: "tests:x"}
"""


def ident(name: str, kind: str = "block") -> Identity:
    return Identity("eblocks.local", "sec", name, kind)


@pytest.fixture
def engine() -> PolicyEngine:
    return PolicyEngine(make_spec(RULES, BLOCKS))


@pytest.mark.parametrize(
    ("facts", "allowed", "rule"),
    [
        (RequestFacts("front", ident("cli", "client")), True, "cli-to-front"),
        (RequestFacts("back", ident("cli", "client")), False, "default"),
        (RequestFacts("back", ident("front")), True, "front-to-back"),
        (RequestFacts("back", ident("front"), method="GET"), False, "default"),
        (RequestFacts("open", ident("legacy-a")), False, "no-legacy"),
        (RequestFacts("open", None), True, "default"),  # the block's own default
        (RequestFacts("open", ident("back")), True, "any-ok"),
        (RequestFacts("back", None, path="/admin/x", claims={"role": "admin"}), True, "admins"),
        (RequestFacts("back", None, path="/admin/x", claims={"role": "user"}), False, "default"),
        (
            RequestFacts("back", None, path="/admin/x", claims={"role": ["user", "admin"]}),
            True,
            "admins",
        ),
    ],
)
def test_engine_decides_and_names_the_rule(
    engine: PolicyEngine, facts: RequestFacts, allowed: bool, rule: str
) -> None:
    decision = engine.authorize(facts)
    assert (decision.allowed, decision.rule) == (allowed, rule)
    assert bool(decision) is allowed


def test_remembered_decisions_follow_every_fact_and_the_claims(engine: PolicyEngine) -> None:
    """The same request twice decides the same; a claim or a method makes a new decision."""
    asked = [
        RequestFacts("back", None, path="/admin/x"),
        RequestFacts("back", None, path="/admin/x", claims={"role": "admin"}),
        RequestFacts("back", None, path="/admin/x", claims={"role": "user"}),
        RequestFacts("back", ident("front")),
        RequestFacts("back", ident("front"), method="GET"),
        RequestFacts("back", ident("front"), pattern="p"),
    ]
    first = [engine.authorize(f).rule for f in asked]
    assert first == ["default", "admins", "default", "front-to-back", "default", "front-to-back"]
    assert [engine.authorize(f).rule for f in reversed(asked)] == first[::-1]


def test_default_allow_with_no_rules_is_trivial() -> None:
    engine = PolicyEngine(make_spec())
    assert engine.trivial
    assert engine.authorize(RequestFacts("front", None)).reason.endswith("defaults to allow")


async def test_denied_by_policy_is_403_with_the_rule_and_an_audit_line(
    secure_mesh: Callable[..., SecureMesh], caplog: pytest.LogCaptureFixture
) -> None:
    async def front(msg: Message, ctx: Context) -> Message:
        return await ctx.call("back", msg)

    async def back(msg: Message, ctx: Context) -> str:
        return f"back saw {ctx.peer}"

    mesh = secure_mesh(make_spec(RULES, BLOCKS))
    await mesh.start("front", front)
    await mesh.start("back", back)
    client = mesh.client()
    reply = await client.call("front", Message(b"x"))
    assert reply.body == b"back saw spiffe://eblocks.local/mesh/sec/block/front"
    with (
        caplog.at_level(logging.WARNING, logger="eblocks.audit"),
        pytest.raises(UpstreamError) as e,
    ):
        await client.call("back", Message(b"x"))
    assert e.value.upstream_status == 403
    assert e.value.upstream_reason == "forbidden"
    assert e.value.origin == "back"
    assert e.value.detail["rule"] == "default"
    lines = [r.getMessage() for r in caplog.records if r.name == "eblocks.audit"]
    assert lines == [
        "deny spiffe://eblocks.local/mesh/sec/client/cli -> back POST / rule=default user=-"
    ]
    assert mesh.blocks["back"].auth is not None
    assert mesh.blocks["back"].auth.counters["forbidden"] == 1


def _cli(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eblocks", "policy", "check", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_policy_check_explains_a_decision(tmp_path: Path) -> None:
    spec = tmp_path / "mesh.yaml"
    spec.write_text(
        "apiVersion: eblocks/v1\nmesh: sec\nblocks:\n"
        '  front: {handler: "tests:front"}\n  back: {handler: "tests:back"}\n' + BLOCKS + RULES
    )
    allowed = _cli(spec, "--from", "front", "--to", "back", "--path", "/")
    assert allowed.returncode == 0, allowed.stderr
    assert "ALLOW spiffe://eblocks.local/mesh/sec/block/front -> back POST /" in allowed.stdout
    assert "rule: front-to-back" in allowed.stdout
    denied = _cli(spec, "--from", "legacy-a", "--to", "open")
    assert denied.returncode == 1
    assert "DENY" in denied.stdout
    assert "rule: no-legacy" in denied.stdout
    claims = _cli(spec, "--from", "client/web", "--to", "back", "--path", "/admin/users",
                  "--claim", "role=admin")  # fmt: skip
    assert "rule: admins" in claims.stdout
    unknown = _cli(spec, "--from", "front", "--to", "nope")
    assert unknown.returncode == 2  # a wrong question; a deny is 1
    assert "no block 'nope'" in unknown.stderr
