"""`eblocks call` sends one logical request: keyed, so the mesh may retry it."""

from __future__ import annotations

import re

import pytest

from .helpers import Sandbox

pytestmark = pytest.mark.integration

HANDLERS = """\
async def front(msg, ctx):
    reply = await ctx.call("store", msg)
    return ctx.idempotency_key.encode() + b" " + reply.body


async def store(msg, ctx):
    return (ctx.idempotency_key or "none").encode()
"""

SPEC = """\
apiVersion: eblocks/v1
mesh: keyed
security: {mtls: disable}
blocks:
  front: {handler: handlers:front}
  store: {handler: handlers:store}
"""


def test_each_call_carries_its_own_key_to_every_hop_unless_given_one(sandbox: Sandbox) -> None:
    sandbox.write("handlers.py", HANDLERS)
    spec = sandbox.write("mesh.yaml", SPEC)
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    keys = []
    for _ in range(2):
        run = sandbox.cmd("call", "front", "--data", "x")
        assert run.returncode == 0, str(run)
        at_front, at_store = run.stdout.split()
        assert re.fullmatch(r"[0-9a-f]{32}", at_front), str(run)
        assert at_store == at_front  # the next hop got the same key (retries may use it)
        keys.append(at_front)
    assert keys[0] != keys[1]  # one key per call
    own = sandbox.cmd("call", "store", "--data", "x", "-H", "idempotency-key: order-7")
    assert own.stdout == "order-7", str(own)
