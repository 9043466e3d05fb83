"""The instance side: POST/GET /v1/policies, the state-dir channel, fetching from a newer peer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from eblocks.policies import LivePolicies
from eblocks.policies.bundle import Bundle, parse_bundle, sign_bundle
from eblocks.policies.keys import bundle_file, load_public_key, load_signing_key, policy_folder
from eblocks.policies.sync import Peer, PolicySync, applied_policies, follow_applied
from eblocks.spec import MeshSpec
from eblocks.spec.policies import Policies
from eblocks.telemetry.core import Hooks

Served = tuple[PolicySync, "TestClient[web.Request, web.Application]"]


def next_policies(spec: MeshSpec, limit: int) -> Policies:
    data = spec.policies.model_dump(mode="json")
    data["blocks"]["store"]["bulkhead"]["max_concurrent"] = limit
    return Policies.model_validate(data)


def bundle(spec: MeshSpec, state: Path, version: int = 1) -> Bundle:
    policies = next_policies(spec, 64 + version)
    return sign_bundle(spec.mesh, version, policies, load_signing_key(state), run="r1")


def make_sync(spec: MeshSpec, state: Path, *, watch_file: bool = False) -> PolicySync:
    live = LivePolicies.of(spec.policies)
    return PolicySync(spec, live, state, load_public_key(state), watch_file=watch_file, run="r1")


@pytest.fixture
async def served(spec: MeshSpec, state: Path) -> AsyncIterator[Served]:
    sync = make_sync(spec, state)
    app = web.Application()
    app.router.add_get("/v1/policies", sync.get)
    app.router.add_post("/v1/policies", sync.post)
    async with TestClient(TestServer(app)) as client:
        yield sync, client


async def test_get_reports_version_zero_before_any_apply(spec: MeshSpec, served: Served) -> None:
    _, client = served
    resp = await client.get("/v1/policies")
    got = parse_bundle(await resp.read())
    assert (got.version, got.signature) == (0, "")
    assert Policies.model_validate(got.policies) == spec.policies


async def test_post_swaps_persists_and_serves_the_bundle(
    spec: MeshSpec, state: Path, served: Served
) -> None:
    sync, client = served
    before = sync.live.current
    sent = bundle(spec, state)
    resp = await client.post("/v1/policies", data=sent.dumps())
    assert resp.status == 200
    assert await resp.json() == {"version": 1, "digest": sent.digest}
    assert sync.live.current is not before
    assert sync.live.current.version == 1
    bulkhead = sync.live.current.block("store").bulkhead
    assert bulkhead is not None
    assert bulkhead.max_concurrent == 65
    assert parse_bundle(bundle_file(state).read_bytes()) == sent
    assert parse_bundle(await (await client.get("/v1/policies")).read()) == sent
    assert sync.swaps == 1


async def test_refusals_answer_with_the_reason_and_are_counted(
    spec: MeshSpec, state: Path, served: Served
) -> None:
    sync, client = served
    good = bundle(spec, state, version=2)
    assert (await client.post("/v1/policies", data=good.dumps())).status == 200
    tampered = dataclasses.replace(
        bundle(spec, state, version=3), policies=next_policies(spec, 1).model_dump(mode="json")
    )
    cases = [
        (tampered.dumps(), 403, "bad_signature"),
        (bundle(spec, state, version=2).dumps(), 409, "stale"),
        (b"{", 400, "malformed"),
    ]
    for body, status, reason in cases:
        resp = await client.post("/v1/policies", data=body)
        assert resp.status == status
        answer = await resp.json()
        assert answer["reason"] == reason
        assert f"policy bundle refused ({reason})" in answer["error"]
    assert sync.live.current.version == 2
    assert dict(sync.refused) == {"bad_signature": 1, "stale": 1, "malformed": 1}
    hooks = Hooks()
    sync.publish_gauges(hooks)
    gauges = {h.name: list(h.read()) for h in hooks.gauges() if not h.counter}
    counters = {h.name: dict(h.read()) for h in hooks.gauges() if h.counter}
    assert gauges["eblocks_policy_version"] == [((), 2.0)]
    assert counters["eblocks_policy_swaps"] == {(): 1.0}
    assert counters["eblocks_policy_bundles_refused"][("stale",)] == 1.0


async def test_instances_on_the_machine_take_the_state_dir_bundle(
    spec: MeshSpec, state: Path, served: Served
) -> None:
    _, client = served
    other = make_sync(spec, state, watch_file=True)
    other.resume()  # nothing applied yet
    assert other.live.current.version == 0
    await client.post("/v1/policies", data=bundle(spec, state).dumps())
    other._poll_file()
    assert other.live.current.version == 1
    late = make_sync(spec, state)
    late.resume()  # a restarted instance starts at the applied version
    assert late.live.current.version == 1


async def test_a_tampered_state_dir_file_is_refused(spec: MeshSpec, state: Path) -> None:
    sync = make_sync(spec, state, watch_file=True)
    forged = dataclasses.replace(bundle(spec, state), version=7)
    bundle_file(state).write_bytes(forged.dumps())
    sync._poll_file()
    assert sync.live.current.version == 0
    assert dict(sync.refused) == {"bad_signature": 1}


async def test_a_peer_at_a_higher_version_is_fetched_from(
    spec: MeshSpec, state: Path, served: Served
) -> None:
    _, client = served
    await client.post("/v1/policies", data=bundle(spec, state, version=4).dumps())
    port = client.port
    assert port is not None
    behind = make_sync(spec, state)
    peers = [Peer("a-0", "a", "127.0.0.1", port, 4), Peer("b-0", "b", "127.0.0.1", 0, 9)]
    task = asyncio.create_task(behind.run(lambda: peers))
    try:
        for _ in range(200):
            if behind.live.current.version == 4:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert behind.live.current.version == 4
    assert behind.bundle.version == 4


async def test_a_peer_serving_a_forged_bundle_is_refused_once(
    spec: MeshSpec, state: Path, served: Served
) -> None:
    sync, client = served
    await client.post("/v1/policies", data=bundle(spec, state, version=2).dumps())
    sync.bundle = dataclasses.replace(sync.bundle, version=5)  # the peer now lies
    port = client.port
    assert port is not None
    behind = make_sync(spec, state)
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            await behind._fetch_newer(http, [Peer("liar-0", "liar", "127.0.0.1", port, 5)])
    assert behind.live.current.version == 0
    assert dict(behind.refused) == {"bad_signature": 1}


async def test_a_long_running_client_follows_later_applies(spec: MeshSpec, state: Path) -> None:
    """`applied_policies` once, then `follow_applied`: each bundle apply leaves, verified."""
    (policy_folder(state) / "run").write_text("r1\n", encoding="ascii")
    live = applied_policies(spec, state)
    assert live.current.version == 0
    follow = asyncio.create_task(follow_applied(live, spec, state, interval=0.01))
    try:
        for version in (1, 2):
            bundle_file(state).write_bytes(bundle(spec, state, version).dumps())
            for _ in range(300):
                if live.current.version == version:
                    break
                await asyncio.sleep(0.01)
            assert live.current.version == version
        forged = dataclasses.replace(bundle(spec, state, 3), version=9)
        bundle_file(state).write_bytes(forged.dumps())
        await asyncio.sleep(0.1)
        assert live.current.version == 2  # refused: not signed for version 9
    finally:
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow
