"""Routing, traffic split and mirroring in a real mesh (`eblocks up`, one process per block).

Routes on ``store``: ``x-tenant: beta`` goes to block ``beta``; everything
else is split 90/10 between ``store`` and ``store-v2`` (labels {version: v2})
and 20% of it is mirrored to ``shadow``, which refuses anything not marked as
a copy. First an in-process `MeshClient` over the supervisor's endpoint file
(as `eblocks call` makes one) calls ``store`` 5,000 times and routes them
itself; then it calls block ``front``, whose own client (a real block process)
routes what it forwards to ``store``. Counts are taken on the receiving side:
every reply names the block that served it and echoes the request, and each
block's ``/metrics`` (checked by promtool) counts what it received from whom.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
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

SPLIT = 5000
BETA = 200

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
defaults: {timeout: 10s, drain: 1s}
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
      destinations:
        - {block: store, weight: 90}
        - {block: store-v2, subset: {version: v2}, weight: 10}  # the labels reach the callers
      mirror: {to: shadow, percent: 20, max_inflight: 10000}
"""

Samples = list[tuple[str, dict[str, str], float]]


def scrape(sandbox: Sandbox, row: dict[str, Any]) -> Samples:
    text = sandbox.admin_ok("routing", row, "/metrics").decode()
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
    return {row["block"]: scrape(sandbox, row) for row in sandbox.instances("routing")}


def received(scraped: Samples, source: str) -> float:
    """Requests a block answered that ``source`` sent it."""
    return total(scraped, "eblocks_requests_total", direction="inbound", src_block=source)


async def drive(
    client: MeshClient, target: str, bodies: Sequence[tuple[str, str | None]]
) -> list[str]:
    """Send every (body, tenant) to ``target``, 32 at a time; the replies in order."""
    replies: list[str] = [""] * len(bodies)
    queue = list(enumerate(bodies))

    async def worker() -> None:
        while queue:
            index, (body, tenant) = queue.pop()
            headers = {"x-tenant": tenant} if tenant else {}
            reply = await client.call(target, Message(body.encode(), headers))
            replies[index] = reply.text()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(32))), timeout=120)
    return replies


def served_by(bodies: Sequence[tuple[str, str | None]], replies: Sequence[str]) -> Counter[str]:
    """Replies by block; each echoes its request and comes from a block its route allows."""
    served: Counter[str] = Counter()
    for (body, tenant), reply in zip(bodies, replies, strict=True):
        block, _, echoed = reply.partition(":")
        assert echoed == body, (body, reply)
        assert block in ({"beta"} if tenant else {"store", "store-v2"}), (body, tenant, reply)
        served[block] += 1
    return served


def settle(
    sandbox: Sandbox, source: str, copies: Callable[[dict[str, Samples]], float]
) -> dict[str, Samples]:
    """The blocks' metrics once the shadow got every copy ``source`` made (they are async)."""
    last: list[tuple[float, float]] = []

    def settled() -> dict[str, Samples] | None:
        now = metrics(sandbox)
        sent = copies(now)
        got = received(now["shadow"], source)
        last.append((sent, got))
        steady = len(last) > 1 and last[-1] == last[-2]  # two scrapes apart, nothing moved
        return now if steady and sent > 0 and sent == got else None

    return wait_for(settled, timeout=20, interval=0.3, what=f"the shadow to get {source}'s copies")


async def test_split_header_route_and_mirror(sandbox: Sandbox) -> None:
    spec_path = sandbox.write("routing/mesh.yaml", SPEC)
    sandbox.write("routing/routes.py", HANDLERS)
    up = sandbox.up(spec_path)
    assert up.returncode == 0, str(up)
    spec = load_spec(spec_path)
    state = sandbox.mesh_dir("routing")
    client = MeshClient(
        spec, SupervisorResolver(state), source="cli", auth=Auth.for_cli(spec, state)
    )
    async with client:
        # 1. this process calls `store`: its own client splits and mirrors
        split = [(f"p{i}", None) for i in range(SPLIT)]
        served = served_by(split, await drive(client, "store", split))
        share = served["store-v2"] / SPLIT
        assert 0.07 <= share <= 0.13, f"store-v2 got {share:.3f} of the split, not 0.10 +- 0.03"
        mirrors = client.routing.mirrors
        await asyncio.wait_for(_drained(client), timeout=20)
        copies = dict(mirrors.counts)
        assert set(copies) == {("canary", "ok")}, copies  # none failed, none dropped
        assert 880 <= copies["canary", "ok"] <= 1120, f"{copies} copies of {SPLIT} at 20%"
        # 2. front (a real block process) routes what it forwards: the header route and metrics
        mixed = [(f"f{i}", "beta" if i % 2 else None) for i in range(2 * BETA)]
        via_front = served_by(mixed, await drive(client, "front", mixed))
    assert via_front["beta"] == BETA

    def mirrored(scraped: dict[str, Samples]) -> float:
        return total(scraped["front"], "eblocks_mirror_requests_total", outcome="ok")

    got = settle(sandbox, "front", mirrored)
    # the receiving side counts what the callers saw
    for block in ("store", "store-v2"):
        assert received(got[block], "cli") == served[block], block
        assert received(got[block], "front") == via_front[block], block
    assert received(got["beta"], "front") == BETA  # only the matching requests, all of them
    assert received(got["beta"], "cli") == 0
    assert received(got["shadow"], "cli") == copies["canary", "ok"]
    front = got["front"]
    routed = {
        (labels["route"], labels["destination"]): value
        for name, labels, value in front
        if name == "eblocks_route_requests_total"
    }
    assert routed == {
        ("beta-users", "beta"): BETA,
        ("canary", "store"): via_front["store"],
        ("canary", "store-v2/version=v2"): via_front["store-v2"],
    }
    outcomes = {
        labels["outcome"]
        for name, labels, value in front
        if name == "eblocks_mirror_requests_total"
    }
    assert outcomes == {"ok"}
    refused = total(got["shadow"], "eblocks_requests_total", classification="failure")
    assert refused == 0  # every request the shadow got was marked as a copy


async def _drained(client: MeshClient) -> None:
    for _ in range(2000):  # bounded by the caller's wait_for too
        if not client.routing.mirrors.inflight("canary"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the mirror copies did not finish")
