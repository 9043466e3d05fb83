"""Routing, traffic split and mirroring in a real mesh (`eblocks up`, one process per block).

Block ``front`` forwards each request to ``store``; front's client enforces
the spec's routes: ``x-tenant: beta`` goes to block ``beta``, everything else
is split 90/10 between ``store`` and ``store-v2`` (labels {version: v2}) and
20% of it is mirrored to ``shadow``. This test drives front from an
in-process `MeshClient` over the supervisor's endpoint file (as `eblocks
call` does) and counts on the receiving side: every reply names the block
that served it and echoes the request, and each block's ``/metrics`` counts
what it received from front.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eblocks import MeshClient
from eblocks.discovery import SupervisorResolver
from eblocks.message import Message
from eblocks.security import Auth
from eblocks.spec import load_spec

from .helpers import Sandbox, wait_for

pytestmark = pytest.mark.integration

PLAIN = 5000
BETA = 300

HANDLERS = '''\
"""Each block answers with its name and the request; shadow refuses anything not a copy."""

from eblocks import Context, Message


async def front(msg: Message, ctx: Context) -> bytes:
    tenant = msg.header("x-tenant")
    out = Message(msg.body, {"x-tenant": tenant} if tenant else {})
    return (await ctx.call("store", out)).body


def store(msg: Message) -> bytes:
    return b"store:" + msg.body


def store_v2(msg: Message) -> bytes:
    return b"store-v2:" + msg.body


def beta(msg: Message) -> bytes:
    return b"beta:" + msg.body


def shadow(msg: Message) -> bytes:
    if msg.header("x-eblocks-mirror") != "1":
        raise ValueError("shadow got a request that is not a mirror copy")
    return b"shadow:" + msg.body
'''

SPEC = """\
apiVersion: eblocks/v1
mesh: routing
defaults: {timeout: 10s}
blocks:
  front: {handler: "routes:front"}
  store: {handler: "routes:store"}
  store-v2: {handler: "routes:store_v2", labels: {version: v2}}
  beta: {handler: "routes:beta"}
  shadow: {handler: "routes:shadow"}
policies:
  routes:
    - name: beta-users
      to: store
      match: [{headers: {x-tenant: {exact: beta}}}]
      destinations: [{block: beta}]
    - name: canary
      to: store
      destinations: [{block: store, weight: 90}, {block: store-v2, weight: 10}]
      mirror: {to: shadow, percent: 20, max_inflight: 10000}
"""

Samples = list[tuple[str, dict[str, str], float]]


def scrape(row: dict[str, Any]) -> Samples:
    url = f"http://{row['host']}:{row['admin_port']}/metrics"
    with urllib.request.urlopen(url, timeout=5.0) as resp:
        text = resp.read().decode()
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run `bash scripts/system-deps.sh` (Debian: prometheus)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout.decode().strip() == "", done.stdout.decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def total(scraped: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_name, sample_labels, value in scraped
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def metrics(sandbox: Sandbox) -> dict[str, Samples]:
    return {row["block"]: scrape(row) for row in sandbox.instances("routing")}


def received(scraped: Samples) -> float:
    """Requests a block answered that front sent it."""
    return total(scraped, "eblocks_requests_total", direction="inbound", src_block="front")


async def drive(client: MeshClient, bodies: Sequence[tuple[str, str | None]]) -> list[str]:
    """Send every (body, tenant) to front, 32 at a time; the replies in order."""
    replies: list[str] = [""] * len(bodies)
    queue = list(enumerate(bodies))

    async def worker() -> None:
        while queue:
            index, (body, tenant) = queue.pop()
            headers = {"x-tenant": tenant} if tenant else {}
            reply = await client.call("front", Message(body.encode(), headers))
            replies[index] = reply.text()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(32))), timeout=120)
    return replies


async def test_split_header_route_and_mirror(sandbox: Sandbox) -> None:
    spec_path = sandbox.write("routing/mesh.yaml", SPEC)
    sandbox.write("routing/routes.py", HANDLERS)
    up = sandbox.up(spec_path)
    assert up.returncode == 0, str(up)

    spec = load_spec(spec_path)
    state = sandbox.mesh_dir("routing")
    bodies = [(f"p{i}", None) for i in range(PLAIN)] + [(f"b{i}", "beta") for i in range(BETA)]
    client = MeshClient(
        spec, SupervisorResolver(state), source="cli", auth=Auth.for_cli(spec, state)
    )
    async with client:
        replies = await drive(client, bodies)

    # the caller's results: every request answered by a block its route allows, echoed intact
    served: Counter[str] = Counter()
    for (body, tenant), reply in zip(bodies, replies, strict=True):
        block, _, echoed = reply.partition(":")
        assert echoed == body, (body, reply)
        assert block in ({"beta"} if tenant else {"store", "store-v2"}), (body, tenant, reply)
        served[block] += 1
    assert served["beta"] == BETA
    share = served["store-v2"] / PLAIN
    assert 0.07 <= share <= 0.13, f"store-v2 got {share:.3f} of the split, not 0.10 +- 0.03"

    # the receiving side agrees; the mirror copies all landed (bounded wait: they are async)
    last: list[tuple[float, float]] = []

    def settled() -> dict[str, Samples] | None:
        now = metrics(sandbox)
        ok = total(now["front"], "eblocks_mirror_requests_total", route="canary", outcome="ok")
        last.append((ok, received(now["shadow"])))
        steady = len(last) > 1 and last[-1] == last[-2]  # two scrapes apart, nothing moved
        return now if steady and ok > 0 and last[-1][0] == last[-1][1] else None

    got = wait_for(settled, timeout=15, interval=0.3, what="the shadow to count every copy")
    assert received(got["store"]) == served["store"]
    assert received(got["store-v2"]) == served["store-v2"]
    assert received(got["beta"]) == BETA  # only the matching requests, all of them
    front = got["front"]
    routed = {
        (labels["route"], labels["destination"]): value
        for name, labels, value in front
        if name == "eblocks_route_requests_total"
    }
    assert routed == {
        ("beta-users", "beta"): BETA,
        ("canary", "store"): served["store"],
        ("canary", "store-v2"): served["store-v2"],
    }
    copies = {
        labels["outcome"]: value
        for name, labels, value in front
        if name == "eblocks_mirror_requests_total"
    }
    assert copies == {"ok": received(got["shadow"])}, copies  # none failed, none dropped
    assert 880 <= copies["ok"] <= 1120, f"{copies['ok']} copies of {PLAIN} at 20%"
    refused = total(got["shadow"], "eblocks_requests_total", classification="failure")
    assert refused == 0  # every request the shadow got was marked as a copy
