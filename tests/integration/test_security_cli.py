"""`eblocks up` with mTLS, tokens and rules; `eblocks call` refused; `eblocks ca rotate` live."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from eblocks.discovery.seeds import read_keys
from eblocks.discovery.wire import key_id_of

from .helpers import Sandbox, wait_for

pytestmark = pytest.mark.integration

HANDLERS = '''\
"""front calls back; back says who called it."""

from eblocks import Context, Message


async def front(msg: Message, ctx: Context) -> Message:
    return await ctx.call("back", msg)


async def back(msg: Message, ctx: Context) -> str:
    return f"back saw {ctx.peer}"
'''

SPEC = """\
apiVersion: eblocks/v1
mesh: guarded
blocks:
  front: {handler: "secapp:front"}
  back: {handler: "secapp:back"}
security:
  svid_ttl: 5m
  tokens: {mode: required}
  authorization:
    default: deny
    rules:
      - {name: cli-to-front, action: allow, from: [client/cli], to: [front]}
      - {name: front-to-back, action: allow, from: [front], to: [back]}
"""


def _openssl_verify(bundle: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl missing (scripts/system-deps.sh)"
    return subprocess.run(
        [openssl, "verify", "-CAfile", str(bundle), str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _admin(sandbox: Sandbox, instance: str, path: str) -> dict[str, object]:
    row = next(r for r in sandbox.instances("guarded") if r["instance"] == instance)
    body: dict[str, object] = json.loads(sandbox.admin_ok("guarded", row, path))
    return body


def _anonymous(sandbox: Sandbox, instance: str, path: str) -> tuple[int, dict[str, str]]:
    """``path`` over TLS without a client certificate, as kubelet (or plain curl) asks."""
    row = next(r for r in sandbox.instances("guarded") if r["instance"] == instance)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(sandbox.mesh_dir("guarded") / "ca" / "bundle.pem")
    url = f"https://{row['host']}:{row['admin_port']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_mesh_with_mtls_tokens_and_rules(sandbox: Sandbox) -> None:
    sandbox.write("secapp.py", HANDLERS)
    spec = sandbox.write("mesh.yaml", SPEC)
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    state = sandbox.mesh_dir("guarded")

    ok = sandbox.cmd("call", "front", "-d", "hi")
    assert ok.returncode == 0, str(ok)
    assert ok.stdout == "back saw spiffe://eblocks.local/mesh/guarded/block/front"

    denied = sandbox.cmd("call", "back", "-d", "hi")
    assert denied.returncode == 1, str(denied)
    assert "forbidden from back" in denied.stderr
    assert "rule" not in denied.stdout
    security = _admin(sandbox, "back-0", "/v1/security")
    assert security["identity"] == "spiffe://eblocks.local/mesh/guarded/block/back"
    counters = security["counters"]
    assert isinstance(counters, dict)
    assert counters["forbidden"] == 1
    assert "rotations" not in counters  # a 5 min SVID is renewed at 2.5 min, not before
    log = (state / "logs" / "back-0.log").read_text()
    assert "deny spiffe://eblocks.local/mesh/guarded/client/cli -> back POST / rule=default" in log

    # the admin port: probes open, data only with a certificate of the mesh
    assert _anonymous(sandbox, "back-0", "/readyz")[0] == 200
    status, headers = _anonymous(sandbox, "back-0", "/v1/stats")
    assert (status, headers["x-eblocks-error"]) == (401, "unauthenticated")
    counters = _admin(sandbox, "back-0", "/v1/security")["counters"]
    assert isinstance(counters, dict)
    assert counters["admin_unauthenticated"] == 1
    log = (state / "logs" / "back-0.log").read_text()
    assert "unauthenticated admin GET /v1/stats" in log

    for holder in ("front-0", "back-0", "cli"):
        done = _openssl_verify(
            state / "ca" / "bundle.pem", state / "identity" / holder / "svid.pem"
        )
        assert done.returncode == 0, done.stdout + done.stderr

    inspect = sandbox.cmd("ca", "inspect", str(spec), "--json")
    assert inspect.returncode == 0, str(inspect)
    held = {row["holder"]: row["id"] for row in json.loads(inspect.stdout)["svids"]}
    assert held["front-0"] == "spiffe://eblocks.local/mesh/guarded/block/front"

    rotate = sandbox.cmd("ca", "rotate", str(spec))
    assert rotate.returncode == 0, str(rotate)
    new_root = state / "ca" / "ca.pem"

    def reissued() -> bool:
        return all(
            _openssl_verify(new_root, state / "identity" / h / "svid.pem").returncode == 0
            for h in ("front-0", "back-0", "cli")
        )

    wait_for(reissued, timeout=45, what="SVIDs re-issued from the new root")

    def reloaded() -> bool:
        try:  # until front-0 reloads, it does not trust the CLI's new certificate
            counters = _admin(sandbox, "front-0", "/v1/security")["counters"]
        except OSError:
            return False
        return isinstance(counters, dict) and counters.get("rotations", 0) >= 1

    wait_for(reloaded, timeout=10, what="front-0 reloads its SVID")
    again = sandbox.cmd("call", "front", "-d", "after rotation")
    assert again.returncode == 0, str(again)
    assert again.stdout == "back saw spiffe://eblocks.local/mesh/guarded/block/front"


GOSSIP_SPEC = """\
apiVersion: eblocks/v1
mesh: rotating
defaults: {timeout: 10s}
discovery: {mode: gossip}
blocks:
  clean: {handler: handlers:clean}
  tokenize: {handler: handlers:tokenize, replicas: 2}
  count: {handler: handlers:count}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
"""


def test_ca_rotation_rotates_the_gossip_key_and_the_mesh_keeps_working(sandbox: Sandbox) -> None:
    folder = sandbox.copy_textpipe().parent
    spec = folder / "rotating.yaml"
    spec.write_text(GOSSIP_SPEC, encoding="utf-8")
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    state = sandbox.mesh_dir("rotating")
    key_before = (state / "gossip.key").read_bytes()

    rotate = sandbox.cmd("ca", "rotate", str(spec))
    assert rotate.returncode == 0, str(rotate)
    wait_for(
        lambda: (state / "gossip.key").read_bytes() != key_before,
        timeout=30,  # the supervisor looks at the CA file every two seconds
        what="the supervisor rotates the gossip key with the CA",
    )
    instances = [row["instance"] for row in sandbox.instances("rotating")]
    new_id = key_id_of(read_keys(state)[0])

    def followed() -> bool:
        logs = [(state / "logs" / f"{i}.log").read_text() for i in instances]
        return all(f"gossip key id {new_id} signs from now on" in log for log in logs)

    # install, then use: each accepts the new key first and signs with it seconds later, so
    # no member ever gets a probe it cannot check (nobody is suspected on the way)
    wait_for(followed, timeout=20, what="every instance signs with the new gossip key")
    members = sandbox.cmd("members", "--mesh", "rotating")
    assert members.returncode == 0, str(members)
    assert members.stdout.count("alive") >= len(instances), str(members)
    call = sandbox.cmd("call", "ingest", "-d", "the new key works")
    assert call.returncode == 0, str(call)
    assert '"words":3' in call.stdout  # "the" is a stop word
