"""`eblocks call` and `eblocks submit` follow the policies `eblocks apply` put in force.

Routes are enforced by the caller, and for these commands the caller is the
CLI process: it must route with the last applied bundle in the state dir
(verified as an instance verifies it), not with the spec the mesh was started
from. ``store`` (v1) and ``store-v2`` run side by side; every reply names the
block that served it. Before the apply, ``x-tenant: beta`` goes to v2 and
everything else to v1; the applied policies send every call to v2. A bundle
that does not verify is refused by the CLI with a one-line error.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses

import pytest

from eblocks.policies.bundle import parse_bundle
from eblocks.policies.keys import bundle_file

from .helpers import STORE_VERSIONS, Run, Sandbox

pytestmark = pytest.mark.integration

CALLS = 10

HANDLERS = (
    '''\
"""store and store-v2 answer with their names."""

from eblocks import Message
'''
    + STORE_VERSIONS
)

SPEC = """\
apiVersion: eblocks/v1
mesh: clipolicies
defaults: {{timeout: 10s, drain: 1s}}
blocks:
  store: {{handler: "clipolicyhandlers:store", labels: {{version: v1}}}}
  store-v2: {{handler: "clipolicyhandlers:store_v2", labels: {{version: v2}}}}
policies:
  routes:
{routes}"""
STARTED = """\
    - name: beta-tenants
      to: store
      match: [{headers: {x-tenant: {exact: beta}}}]
      destinations: [{block: store-v2}]
    - name: stable
      to: store
      destinations: [{block: store}]
"""
APPLIED = """\
    - name: all-v2
      to: store
      destinations: [{block: store-v2}]
"""


def calls(sandbox: Sandbox, *extra: str, n: int = CALLS) -> list[Run]:
    """``eblocks call store`` ``n`` times (four at a time: each is a fresh process)."""
    args = ("call", "store", "--data", "hi", "--mesh", "clipolicies", *extra)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: sandbox.cmd(*args, timeout=60), range(n)))


def served(runs: list[Run]) -> list[str]:
    for run in runs:
        assert run.returncode == 0, str(run)
    return [run.stdout for run in runs]


def test_call_and_submit_route_with_the_applied_policies(sandbox: Sandbox) -> None:
    sandbox.write("clipolicyhandlers.py", HANDLERS)
    spec = sandbox.write("clipolicies.yaml", SPEC.format(routes=STARTED))
    started = sandbox.up(spec)
    assert started.returncode == 0, str(started)

    assert served(calls(sandbox)) == ["store"] * CALLS
    assert served(calls(sandbox, "-H", "x-tenant: beta", n=3)) == ["store-v2"] * 3

    changed = sandbox.write("changed.yaml", SPEC.format(routes=APPLIED))
    applied = sandbox.cmd("apply", str(changed), "--timeout", "30")
    assert applied.returncode == 0, str(applied)
    assert "applied policies v1" in applied.stdout, str(applied)
    assert "2/2 instances at v1" in applied.stdout, str(applied)

    assert served(calls(sandbox)) == ["store-v2"] * CALLS
    assert served(calls(sandbox, "-H", "x-tenant: beta", n=3)) == ["store-v2"] * 3

    docs = sandbox.work / "docs"
    for i in range(3):
        sandbox.write(f"docs/{i}.txt", f"doc {i}")
    out = sandbox.work / "out"
    submitted = sandbox.cmd("submit", "store", str(docs), "--out", str(out), timeout=60)
    assert submitted.returncode == 0, str(submitted)
    assert {p.name: p.read_text() for p in out.iterdir()} == dict.fromkeys(
        ("0.txt", "1.txt", "2.txt"), "store-v2"
    )

    # a bundle in the state dir that does not verify is refused, never silently ignored
    path = bundle_file(sandbox.mesh_dir("clipolicies"))
    bundle = parse_bundle(path.read_bytes())
    path.write_bytes(dataclasses.replace(bundle, version=bundle.version + 5).dumps())
    refused = sandbox.cmd("call", "store", "--data", "hi", "--mesh", "clipolicies", timeout=60)
    assert refused.returncode == 1, str(refused)
    assert refused.stdout == "", str(refused)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, str(refused)
    assert "policy bundle refused (bad_signature)" in lines[0], str(refused)
    assert str(path) in lines[0], str(refused)
