"""Authorization on the path a call is for, and `eblocks policy check` giving the live answer.

A call between blocks is ``POST /`` with its path in ``x-eblocks-path``; rules
with ``paths`` match that path at a handler block (as routes and faults do),
the real path at an application block.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from typer.testing import CliRunner

from eblocks import Block, Context, MeshClient, Message, UpstreamError
from eblocks.cli import app as cli
from eblocks.policies.target import normal_path, request_line
from eblocks.security.policy import caller_of, check, served_as

from .secmesh import SecureMesh, make_spec

RULES = """
security:
  authorization:
    default: deny
    rules:
      - {name: no-secrets, action: deny, to: [back, api], paths: ["/admin/secret*"]}
      - {name: admins, action: allow, from: [client/cli], to: [back, api], paths: ["/admin/*"]}
"""
BLOCKS = """  api: {app: "tests:api"}
  out: {gateway: {kind: egress, allow: [{host: example.com}]}}
  web: {gateway: {kind: ingress, routes: [{name: all, match: {path: {prefix: /}}, to: back}]}}
  ext: {external: {command: [prog], port: 8080}}
"""

# (x-eblocks-path or None, the decision's rule, allowed)
CALLS = [
    ("/admin/users", "admins", True),
    ("/admin/users?page=2", "admins", True),  # the query is not part of the path
    ("/admin/secret-keys", "no-secrets", False),
    ("/public", "default", False),
    (None, "default", False),  # no header: the call is for `/`
    # matched as a server reads the path: dot segments resolved, escapes decoded
    ("/public/../admin/secret-keys", "no-secrets", False),
    ("/admin/%73ecret", "no-secrets", False),
    ("/admin/./users", "admins", True),
    ("/admin/../secret", "default", False),  # that is /secret
    ("//admin/secret-keys", "no-secrets", False),  # a server merges the slashes
    ("admin/secret-keys", "no-secrets", False),  # and reads the path as absolute
]


async def _live(client: MeshClient, path: str | None) -> tuple[bool, str, str]:
    """What ``back`` decided for a call for ``path``: allowed, the rule (403's), the error."""
    headers = {"x-eblocks-path": path} if path is not None else {}
    try:
        reply = await client.call("back", Message(b"x", headers))
    except UpstreamError as exc:
        refused = (exc.upstream_status, exc.detail.get("rule", "?"), str(exc))
        return False, refused[1] if refused[0] == 403 else f"status {refused[0]}", refused[2]
    return reply.body == b"in", "", ""


async def test_a_path_rule_decides_on_the_calls_x_eblocks_path_as_policy_check_does(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    async def back(msg: Message, ctx: Context) -> str:
        return "in"

    spec = make_spec(RULES, BLOCKS)
    mesh = secure_mesh(spec)
    await mesh.start("back", back)
    client = mesh.client()
    caller = caller_of(spec, "client/cli")
    for path, rule, allowed in CALLS:
        live_allowed, live_rule, error = await _live(client, path)
        checked = check(spec, caller, "back", method="POST", path=path or "/")
        assert (live_allowed, checked.allowed, checked.rule) == (allowed, allowed, rule), path
        if not allowed:  # the live refusal names the same rule, reason and path
            assert live_rule == checked.rule, path
            assert checked.reason in error
            read = normal_path((path or "/").partition("?")[0])
            assert f"may not call back POST {read}:" in error
    # another caller: the allow rule names client/cli only
    other = mesh.client("web")
    with pytest.raises(UpstreamError) as e:
        await other.call("back", Message(b"x", {"x-eblocks-path": "/admin/users"}))
    assert e.value.detail["rule"] == "default"
    assert not check(spec, caller_of(spec, "client/web"), "back", path="/admin/users")
    auth = mesh.blocks["back"].auth
    assert auth is not None
    assert auth.counters["forbidden"] == 9


async def test_an_app_block_decides_on_the_real_http_path(
    secure_mesh: Callable[..., SecureMesh],
) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=request.path)

    spec = make_spec(RULES, BLOCKS)
    mesh = secure_mesh(spec)
    api = web.Application()
    api.router.add_route("*", "/{tail:.*}", ok)
    auth = mesh.auth("api-0", "api")
    block = Block.in_mesh(
        "api",
        None,
        app=api,
        client=MeshClient(spec, mesh.resolver, source="api", auth=auth),
        instance="api-0",
        auth=auth,
    )
    await block.start("127.0.0.1", 0)
    mesh.blocks["api"] = block
    tls: ssl.SSLContext = mesh.auth("cli").client_ssl()
    base = f"https://127.0.0.1:{block.port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/admin/users", ssl=tls) as resp:
            assert (resp.status, await resp.text()) == (200, "/admin/users")
        # an app block's request is what it asks for: the header is not its path
        async with session.post(f"{base}/", headers={"x-eblocks-path": "/admin/x"}, ssl=tls) as r:
            assert r.status == 403
            assert (await r.json())["rule"] == "default"
    assert check(spec, caller_of(spec, "client/cli"), "api", method="GET", path="/admin/users")


def test_each_kind_of_block_takes_the_method_and_path_where_its_policies_do() -> None:
    spec = make_spec(RULES, BLOCKS)
    kinds = {name: served_as(spec, name) for name in ("back", "api", "out", "web", "ext", "nope")}
    assert kinds == {
        "back": "messages",
        "api": "app",
        "out": "messages",
        "web": "app",
        "ext": "sidecar",
        "nope": "messages",
    }
    call = make_mocked_request(
        "POST", "/", headers={"X-Eblocks-Path": "/a/../admin/x?q=1", "x-eblocks-method": "get"}
    )
    assert request_line("messages", call) == ("POST", "/admin/x")  # as a server reads it
    assert request_line("app", call) == ("POST", "/")
    assert request_line("sidecar", call) == ("GET", "/admin/x")  # what the program is asked
    direct = make_mocked_request("GET", "/%61dmin/x?q=1")
    assert request_line("messages", direct) == ("GET", "/")
    assert request_line("app", direct) == ("GET", "/admin/x")
    assert request_line("sidecar", direct) == ("GET", "/admin/x")
    dotted = make_mocked_request("GET", "/a/../admin/x?q=1")
    assert request_line("app", dotted) == ("GET", "/admin/x")
    assert request_line("sidecar", dotted) == ("GET", "/admin/x")


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    spec = tmp_path / "mesh.yaml"
    spec.write_text(
        "apiVersion: eblocks/v1\nmesh: sec\nblocks:\n"
        '  front: {handler: "tests:front"}\n  back: {handler: "tests:back"}\n'
        '  api: {app: "tests:api"}\n' + RULES
    )
    return spec


def _check(spec: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["policy", "check", str(spec), *args])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("nope", "--from: no block 'nope' (blocks: api, back, front; a caller that is not a"),
        ("spiffe://eblocks.local/mesh/sec/block/nope", "--from: no block 'nope'"),
        ("spiffe://other.example/mesh/sec/block/front", "is not of trust domain 'eblocks.local'"),
        ("spiffe://eblocks.local/mesh/shop/client/cli", "mesh 'sec'"),
        ("client/Not A Name", "--from: 'spiffe://eblocks.local/mesh/sec/client/Not A Name' is"),
        ("client/", "is not a mesh identity"),
    ],
)
def test_policy_check_refuses_a_caller_that_is_not_of_the_mesh(
    spec_file: Path, source: str, says: str
) -> None:
    code, output = _check(spec_file, "--from", source, "--to", "back")
    assert code == 2  # a wrong question, not a deny (1)
    assert output.startswith("error: --from: ")
    assert says in output


def test_policy_check_takes_a_block_a_client_or_a_spiffe_id_of_the_mesh(
    spec_file: Path,
) -> None:
    code, unknown_to = _check(spec_file, "--from", "front", "--to", "nope")
    assert (code, unknown_to) == (2, "error: --to: no block 'nope' (blocks: api, back, front)")
    for source in ("front", "client/cli", "spiffe://eblocks.local/mesh/sec/block/front"):
        code, output = _check(spec_file, "--from", source, "--to", "back", "--path", "/x")
        assert (code, "rule: default") == (1, output.split(" why:")[0].split("-> back POST /x ")[1])
    code, output = _check(
        spec_file, "--from", "client/cli", "--to", "back", "--path", "/admin/users?page=2"
    )
    assert code == 0, output
    assert "rule: admins" in output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--method", "GE T"], "--method: expected an HTTP method"),
        (["--path", ""], "--path: expected the path the call is for"),
        (["--pattern", "nope"], "--pattern: no pattern 'nope' (patterns: none)"),
        (["--claim", "role"], "--claim 'role': expected name=value"),
        (["--claim", "=admin"], "--claim '=admin': expected name=value"),
    ],
)
def test_policy_check_exits_2_on_a_question_it_cannot_answer(
    spec_file: Path, args: list[str], says: str
) -> None:
    code, output = _check(spec_file, "--from", "front", "--to", "back", *args)
    assert code == 2
    assert output == f"error: {says}" or output.startswith(f"error: {says}")


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ("/admin/users", "/admin/users"),
        ("", "/"),
        ("/a/../admin/x", "/admin/x"),
        ("/a/./b/..", "/a/"),
        ("/../../etc", "/etc"),
        ("/%61dmin/%7euser", "/admin/~user"),
        ("/a/%2e%2e/admin", "/admin"),
        ("admin/x", "/admin/x"),  # absolute, as every server reads a request path
        ("./admin/x", "/admin/x"),
        ("a/../b", "/b"),
        ("//admin/x", "/admin/x"),  # slashes merged, as nginx and http.server read them
        ("/a//../admin", "/admin"),
        ("/admin%2F%2Fx", "/admin/x"),
    ],
)
def test_normal_path_reads_a_path_as_a_server_does(raw: str, read: str) -> None:
    assert normal_path(raw) == read
