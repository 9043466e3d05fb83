"""`eblocks apply` moves a route's traffic from one block to another under load, none failed.

Block ``front`` forwards every call to ``store``; a route decides where those
calls go: first all to ``store``, then (applied while calls flow) all to
``store-v2``. The routing happens in ``front``'s own process, with the
policies `eblocks apply` delivered to it; every reply names the block that
served it. Needs the route layer (`eblocks.layers.route`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import pytest

from eblocks.block import MeshClient
from eblocks.discovery import SupervisorResolver
from eblocks.errors import MeshError
from eblocks.message import Message
from eblocks.security import Auth
from eblocks.spec import load_spec

from .helpers import STORE_VERSIONS, Sandbox

pytestmark = pytest.mark.integration

HANDLERS = (
    '''\
"""front forwards to store; store and store-v2 answer with their names."""

from eblocks import Context, Message


async def front(msg: Message, ctx: Context) -> bytes:
    return (await ctx.call("store", Message(msg.body))).body
'''
    + STORE_VERSIONS
)

SPEC = """\
apiVersion: eblocks/v1
mesh: split
defaults: {{timeout: 10s, drain: 1s}}
blocks:
  front: {{handler: "splithandlers:front", replicas: 2}}
  store: {{handler: "splithandlers:store"}}
  store-v2: {{handler: "splithandlers:store_v2", labels: {{version: v2}}}}
policies:
  routes:
    - name: canary
      to: store
      destinations: [{destination}]
"""
OLD = "{block: store}"
NEW = "{block: store-v2, subset: {version: v2}}"


async def test_apply_moves_a_route_under_load_with_no_failure(sandbox: Sandbox) -> None:
    sandbox.write("splithandlers.py", HANDLERS)
    spec = sandbox.write("split.yaml", SPEC.format(destination=OLD))
    started = await asyncio.to_thread(sandbox.up, spec)
    assert started.returncode == 0, str(started)
    changed = sandbox.write("changed.yaml", SPEC.format(destination=NEW))

    mesh = load_spec(spec)
    state = sandbox.mesh_dir("split")
    served: collections.Counter[str] = collections.Counter()
    order: list[str] = []
    failures: list[str] = []
    stop = asyncio.Event()

    async def worker(client: MeshClient) -> None:
        while not stop.is_set():
            try:
                reply = await client.call("front", Message(b"x"))
            except MeshError as exc:
                failures.append(repr(exc))
                continue
            served[reply.body.decode()] += 1
            order.append(reply.body.decode())

    async def until(predicate: Callable[[], bool], what: str) -> None:
        for _ in range(600):  # 30 s
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    auth = Auth.for_cli(mesh, state)
    async with MeshClient(mesh, SupervisorResolver(state), source="cli", auth=auth) as client:
        workers = [asyncio.create_task(worker(client)) for _ in range(4)]
        await until(lambda: served["store"] >= 50, "calls served by store")
        before_apply = len(order)
        applied = await asyncio.to_thread(sandbox.cmd, "apply", str(changed), "--timeout", "30")
        at_apply = len(order)
        await until(lambda: served["store-v2"] >= 50, "calls served by store-v2")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 20)

    assert applied.returncode == 0, str(applied)
    assert "4/4 instances at v1" in applied.stdout
    assert failures == []
    assert set(served) == {"store", "store-v2"}
    # once every instance reports v1, front routes nothing to store: past the (at most 4)
    # calls in flight when apply returned, every reply comes from store-v2
    assert "store" not in order[at_apply + 4 :]
    assert before_apply >= 50
    assert set(order[:before_apply]) == {"store"}  # v0 sent nothing to store-v2
