"""`eblocks diff` / `eblocks apply` against real processes: no restart, no failed request.

The textpipe pipeline (clean, tokenize x2, count x2) runs with policies; the
tests change them while an in-process client keeps calling the pipeline, and
check the version and digest every instance reports (GET /v1/policies).
In gossip mode the bundle reaches the instances that were not POSTed to
through their peers (gossip record -> fetch -> verify), never the state dir.
Every wait is bounded; no assertion is about speed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from eblocks.block import MeshClient
from eblocks.discovery import SupervisorResolver
from eblocks.errors import MeshError
from eblocks.message import Message
from eblocks.policies import digest_of
from eblocks.policies.bundle import parse_bundle, sign_bundle
from eblocks.policies.keys import load_signing_key, read_run
from eblocks.security import Auth
from eblocks.spec import MeshSpec, load_spec

from .helpers import Sandbox, wait_for

pytestmark = pytest.mark.integration

SPEC = """\
apiVersion: eblocks/v1
mesh: {mesh}
defaults:
  timeout: 10s
  drain: 2s
  retries: {{attempts: 3, backoff: 50ms}}
{discovery}blocks:
  clean: {{handler: handlers:clean}}
  tokenize: {{handler: handlers:tokenize, replicas: {tokenize}}}
  count: {{handler: handlers:count, replicas: 2}}
patterns:
  ingest:
    pipeline: [clean, tokenize, count]
policies:
  routes:
    - name: tokens
      to: tokenize
      retries: {{attempts: 3}}
  blocks:
    count:
      bulkhead: {{max_concurrent: {bulkhead}}}
"""
NEW_ROUTE = """\
    - name: counts
      to: count
      timeout: 5s
"""


def spec_text(
    mesh: str, *, bulkhead: int = 64, tokenize: int = 2, gossip: bool = False, route: bool = False
) -> str:
    discovery = "discovery:\n  mode: gossip\n  leave_drain: 1s\n" if gossip else ""
    text = SPEC.format(mesh=mesh, discovery=discovery, tokenize=tokenize, bulkhead=bulkhead)
    return (
        text.replace("  blocks:\n    count:", NEW_ROUTE + "  blocks:\n    count:")
        if route
        else text
    )


def up(sandbox: Sandbox, mesh: str, **kw: Any) -> Path:
    folder = sandbox.copy_textpipe().parent
    spec = folder / f"{mesh}.yaml"
    spec.write_text(spec_text(mesh, **kw), encoding="utf-8")
    started = sandbox.up(spec)
    assert started.returncode == 0, str(started)
    return spec


def write(spec: Path, name: str, text: str) -> Path:
    path = spec.parent / name
    path.write_text(text, encoding="utf-8")
    return path


def admin(sandbox: Sandbox, mesh: str, row: dict[str, Any], path: str) -> bytes:
    """As the CLI asks it: https with the CLI's certificate (mTLS strict by default)."""
    return sandbox.admin_ok(mesh, row, path)


def reported(sandbox: Sandbox, mesh: str) -> dict[str, tuple[int, str]]:
    """Each instance's (version, digest) as its GET /v1/policies says."""
    out = {}
    for row in sandbox.instances(mesh):
        bundle = parse_bundle(admin(sandbox, mesh, row, "/v1/policies"))
        out[row["instance"]] = (bundle.version, bundle.digest)
    return out


def post(sandbox: Sandbox, row: dict[str, Any], body: bytes) -> tuple[int, dict[str, Any]]:
    status, answer = sandbox.admin("reload", row, "/v1/policies", data=body)
    return status, orjson.loads(answer)


def count_of(metrics: str, reason: str) -> float:
    """``eblocks_policy_bundles_refused_total{reason=...}`` (0 before the first refusal)."""
    found = re.search(
        rf'^eblocks_policy_bundles_refused_total{{reason="{reason}"}} (\S+)$', metrics, re.M
    )
    return float(found.group(1)) if found else 0.0


@dataclasses.dataclass
class Load:
    """Calls to the pipeline from this process, counted, until stopped."""

    ok: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def run(self, client: MeshClient, concurrency: int = 4) -> None:
        async def worker(i: int) -> None:
            while not self.stop.is_set():
                try:
                    reply = await client.call("ingest", Message.of(f"quick brown {'x' * i} fox"))
                except MeshError as exc:
                    self.failures.append(repr(exc))
                    continue
                assert orjson.loads(reply.body)["words"] == 4
                self.ok += 1

        await asyncio.gather(*(worker(i) for i in range(1, concurrency + 1)))


async def until(predicate: Any, bound: float, what: str) -> None:
    for _ in range(int(bound / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {bound:g}s waiting for {what}")


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Sandbox, Path]]:
    """One supervisor-mode mesh for the tests below (each reads the version it starts at)."""
    box = Sandbox(Path(tempfile.mkdtemp(prefix="eblocks-it-")))
    try:
        yield box, up(box, "reload")
    finally:
        leftovers = box.close()
    if leftovers:
        pytest.fail("processes left behind after `eblocks down`:\n" + "\n".join(leftovers))


def version_of(sandbox: Sandbox, mesh: str) -> int:
    versions = {v for v, _ in reported(sandbox, mesh).values()}
    assert len(versions) == 1, versions
    return versions.pop()


async def test_diff_then_apply_under_load_drops_nothing(shared: tuple[Sandbox, Path]) -> None:
    sandbox, spec = shared
    start = version_of(sandbox, "reload")
    new = start + 1
    changed = write(spec, "changed.yaml", spec_text("reload", bulkhead=100 + new, route=True))
    shown = await asyncio.to_thread(sandbox.cmd, "diff", str(changed))
    assert shown.returncode == 1, str(shown)
    assert f"running policies v{start}" in shown.stdout
    if start == 0:
        for line in ("+ route counts", "    timeout: 5.0", "~ block count",
                     "    bulkhead.max_concurrent: 64 -> 101", "2 policy changes"):  # fmt: skip
            assert line in shown.stdout.splitlines(), str(shown)
    else:
        assert "~ block count" in shown.stdout.splitlines(), str(shown)

    bad = write(spec, "bad.yaml", spec_text("reload").replace("max_concurrent: 64", "max: 1"))
    invalid = await asyncio.to_thread(sandbox.cmd, "diff", str(bad))
    assert invalid.returncode == 2, str(invalid)
    assert re.search(r"bad\.yaml:\d+:\d+", invalid.stderr), str(invalid)
    assert "unknown field 'max'" in invalid.stderr
    nowhere = await asyncio.to_thread(sandbox.cmd, "diff", str(changed), "--mesh", "nowhere")
    assert nowhere.returncode == 2, str(nowhere)  # trouble, never "changed"
    assert "no mesh 'nowhere'" in nowhere.stderr

    mesh_spec = load_spec(spec)
    state = sandbox.mesh_dir("reload")
    load = Load()
    client = MeshClient(
        mesh_spec, SupervisorResolver(state), source="cli", auth=Auth.for_cli(mesh_spec, state)
    )
    async with client:
        driver = asyncio.create_task(load.run(client))
        await until(lambda: load.ok >= 20 or driver.done(), 30, "the load to flow")
        before = load.ok
        applied = await asyncio.to_thread(sandbox.cmd, "apply", str(changed), "--timeout", "30")
        during = load.ok - before
        await until(lambda: load.ok >= before + during + 20 or driver.done(), 30, "more calls")
        load.stop.set()
        await asyncio.wait_for(driver, 20)

    assert applied.returncode == 0, str(applied)
    assert f"applied policies v{new}" in applied.stdout
    assert f"5/5 instances at v{new}" in applied.stdout
    assert load.failures == []
    assert during > 0  # the apply happened while calls were flowing
    want = digest_of(load_spec(changed).policies)
    assert reported(sandbox, "reload") == dict.fromkeys(
        ("clean-0", "tokenize-0", "tokenize-1", "count-0", "count-1"), (new, want)
    )
    for row in sandbox.instances("reload"):
        assert (
            f"eblocks_policy_version {new}.0" in admin(sandbox, "reload", row, "/metrics").decode()
        )

    again = await asyncio.to_thread(sandbox.cmd, "diff", str(changed))
    assert again.returncode == 0, str(again)
    assert f"running policies v{new}" in again.stdout
    assert "no policy change" in again.stdout

    restart = write(
        spec, "restart.yaml", spec_text("reload", bulkhead=100 + new, route=True, tokenize=3)
    )
    noted = await asyncio.to_thread(sandbox.cmd, "apply", str(restart))
    assert noted.returncode == 0, str(noted)
    assert "needs a restart (not applied): blocks.tokenize.replicas" in noted.stdout
    assert "no policy change" in noted.stdout
    assert version_of(sandbox, "reload") == new


def test_bundles_posted_by_hand_are_checked(shared: tuple[Sandbox, Path]) -> None:
    sandbox, spec = shared
    rows = {r["instance"]: r for r in sandbox.instances("reload")}
    target = rows["count-1"]
    current = parse_bundle(admin(sandbox, "reload", target, "/v1/policies"))
    new = current.version + 1
    key = load_signing_key(sandbox.mesh_dir("reload"))
    run = read_run(sandbox.mesh_dir("reload"))
    assert run
    mesh_spec: MeshSpec = load_spec(spec)
    good = sign_bundle("reload", new, mesh_spec.policies, key, run=run)
    refused_before = {
        reason: count_of(admin(sandbox, "reload", target, "/metrics").decode(), reason)
        for reason in ("bad_signature", "wrong_mesh", "other_run", "stale")
    }

    tampered = dataclasses.replace(good, version=new + 5)
    status, body = post(sandbox, target, tampered.dumps())
    assert (status, body["reason"]) == (403, "bad_signature")
    assert body["error"] == ("policy bundle refused (bad_signature): the signature does not verify")
    other_mesh = sign_bundle("other", new, mesh_spec.policies, key, run=run)
    status, body = post(sandbox, target, other_mesh.dumps())
    assert (status, body["reason"]) == (403, "wrong_mesh")
    earlier_run = sign_bundle("reload", new, mesh_spec.policies, key, run="0123456789abcdef")
    status, body = post(sandbox, target, earlier_run.dumps())
    assert (status, body["reason"]) == (403, "other_run")
    data = mesh_spec.policies.model_dump(mode="json")
    data["routes"][0]["to"] = "ghost"
    forged_ref = dataclasses.replace(good, policies=data, digest="x")
    status, body = post(sandbox, target, forged_ref.dumps())
    assert (status, body["reason"]) == (403, "bad_signature")  # the signature is checked first
    assert parse_bundle(admin(sandbox, "reload", target, "/v1/policies")) == current

    metrics = admin(sandbox, "reload", target, "/metrics").decode()
    assert count_of(metrics, "bad_signature") == refused_before["bad_signature"] + 2
    assert count_of(metrics, "wrong_mesh") == refused_before["wrong_mesh"] + 1
    assert count_of(metrics, "other_run") == refused_before["other_run"] + 1
    log = (sandbox.mesh_dir("reload") / "logs" / "count-1.log").read_text()
    assert "policy bundle refused (bad_signature)" in log
    assert f"bundle v{new + 5} from POST by 127.0.0.1" in log

    status, body = post(sandbox, target, good.dumps())
    assert status == 200, body
    status, body = post(sandbox, target, good.dumps())
    assert (status, body["reason"]) == (409, "stale")
    assert (
        count_of(admin(sandbox, "reload", target, "/metrics").decode(), "stale")
        == refused_before["stale"] + 1
    )
    wait_for(
        lambda: {v for v, _ in reported(sandbox, "reload").values()} == {new},
        timeout=20,
        what=f"every instance at v{new} through the state dir",
    )


def test_gossip_mode_carries_the_version_and_peers_fetch_it(sandbox: Sandbox) -> None:
    spec = up(sandbox, "gossipy", gossip=True)
    changed = write(spec, "changed.yaml", spec_text("gossipy", gossip=True, bulkhead=8))
    applied = sandbox.cmd("apply", str(changed), "--timeout", "30")
    assert applied.returncode == 0, str(applied)
    via = re.search(r"through (\S+)", applied.stdout)
    assert via is not None, str(applied)
    assert "5/5 instances at v1" in applied.stdout
    want = digest_of(load_spec(changed).policies)
    assert set(reported(sandbox, "gossipy").values()) == {(1, want)}
    row = next(r for r in sandbox.instances("gossipy") if r["instance"] != via.group(1))
    wait_for(
        lambda: all(
            m["policy_version"] == 1
            for m in orjson.loads(admin(sandbox, "gossipy", row, "/v1/members"))["members"]
            if m["status"] == "alive"
        ),
        timeout=20,
        what="every gossip record at policy version 1",
    )
    assert len(orjson.loads(admin(sandbox, "gossipy", row, "/v1/members"))["members"]) == 5
    sources: collections.Counter[str] = collections.Counter()
    for r in sandbox.instances("gossipy"):
        log = (sandbox.mesh_dir("gossipy") / "logs" / f"{r['instance']}.log").read_text()
        found = re.search(r"policies v1 in force \(digest \w+, from (POST|peer)", log)
        assert found is not None, log
        sources[found.group(1)] += 1
    assert sources == {"POST": 1, "peer": 4}
