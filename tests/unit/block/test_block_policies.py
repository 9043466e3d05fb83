"""A real `Block` in process enforcing its own policies: 429, 503 and faults over HTTP.

Handler blocks and application blocks (aiohttp apps) get the same three
layers; every refusal carries its reason and origin, and /metrics counts it by
reason and rule.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from eblocks import Block, Message, NoEndpointsError
from eblocks.message import ERROR_HEADER, ORIGIN_HEADER, PATH_HEADER, SOURCE_HEADER
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.target import EDGE_KEY
from eblocks.spec.models import Defaults, resolve_settings
from eblocks.spec.policies import Policies
from eblocks.testing import FakeClock


def live(block: dict[str, Any], name: str = "store") -> LivePolicies:
    return LivePolicies.of(Policies.model_validate({"blocks": {name: block}}))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def echo(msg: Message) -> bytes:
    return msg.body


async def post(
    session: aiohttp.ClientSession, block: Block, path: str = "/", **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    url = f"http://127.0.0.1:{block.port}{path}"
    async with session.post(url, data=b"x", headers=headers) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def metrics(session: aiohttp.ClientSession, block: Block) -> str:
    async with session.get(f"http://127.0.0.1:{block.admin_port}/metrics") as resp:
        return await resp.text()


async def test_a_handler_block_answers_429_with_retry_after_per_source(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    policies = live({"rate_limits": [{"rate": 0.5, "burst": 2, "per": "source"}]})
    async with Block("store", echo, policies=policies, clock=clock) as block:
        web_calls = [await post(session, block, **{SOURCE_HEADER: "web"}) for _ in range(3)]
        assert [status for status, _, _ in web_calls] == [200, 200, 429]
        _, headers, _ = web_calls[2]
        assert headers[ERROR_HEADER] == "rate_limited"
        assert headers[ORIGIN_HEADER] == "store"
        assert headers["retry-after"] == "2"  # a token every 2 s
        status, _, _ = await post(session, block, **{SOURCE_HEADER: "batch"})
        assert status == 200  # another source, another bucket
        clock.advance(2.0)
        status, _, _ = await post(session, block, **{SOURCE_HEADER: "web"})
        assert status == 200
        text = await metrics(session, block)
    line = 'eblocks_policy_denials_total{block="store",reason="rate_limited",rule="rate_limits[0]"}'
    assert f"{line} 1.0" in text
    assert 'reason="rate_limited"' in text.split("eblocks_request_errors_total", 1)[1]


async def test_a_full_bulkhead_answers_503_at_once(session: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def slow(msg: Message) -> bytes:
        await release.wait()
        return b"done"

    async with Block("store", slow, policies=live({"bulkhead": {"max_concurrent": 2}})) as block:
        held = [asyncio.ensure_future(post(session, block)) for _ in range(2)]
        async with asyncio.timeout(10):
            while block.inflight < 2:  # noqa: ASYNC110 - the server side has no event to wait on
                await asyncio.sleep(0.01)
        status, headers, body = await post(session, block)
        assert (status, headers[ERROR_HEADER], headers[ORIGIN_HEADER]) == (
            503,
            "overloaded",
            "store",
        )
        assert b'"bulkhead":"bulkhead"' in body
        release.set()
        assert [r[0] for r in await asyncio.gather(*held)] == [200, 200]


async def test_faults_abort_with_their_status(session: aiohttp.ClientSession) -> None:
    rule = {"match": {"path": {"prefix": "/chaos"}}, "abort": {"percent": 100, "status": 418}}
    async with Block("store", echo, policies=live({"faults": [rule]})) as block:
        status, headers, _ = await post(session, block, **{PATH_HEADER: "/chaos/x"})
        assert (status, headers[ERROR_HEADER]) == (418, "fault_injected")
        status, _, _ = await post(session, block, **{PATH_HEADER: "/calm"})
        assert status == 200
        assert 'rule="faults[0]"' in await metrics(session, block)


async def test_an_app_block_is_limited_on_its_real_method_and_path(
    session: aiohttp.ClientSession,
) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    policies = live(
        {
            "rate_limits": [{"match": {"path": {"prefix": "/api"}}, "rate": 0.001, "burst": 1}],
            "faults": [
                {
                    "match": {"methods": ["DELETE"], "query": {"chaos": {"exact": "1"}}},
                    "abort": {"percent": 100, "status": 503},
                }
            ],
        },
        name="web",
    )
    async with Block("web", app=app, policies=policies, rng=random.Random(1)) as block:
        assert (await post(session, block, "/api/a"))[0] == 200
        status, headers, _ = await post(session, block, "/api/b")
        assert (status, headers[ERROR_HEADER], headers[ORIGIN_HEADER]) == (
            429,
            "rate_limited",
            "web",
        )
        assert (await post(session, block, "/static/x"))[0] == 200
        url = f"http://127.0.0.1:{block.port}/other?chaos=1"
        async with session.delete(url) as resp:
            assert (resp.status, resp.headers[ERROR_HEADER]) == (503, "fault_injected")
        async with session.get(url) as resp:
            assert resp.status == 200
        text = await metrics(session, block)
    assert 'eblocks_policy_denials_total{block="web",reason="rate_limited"' in text
    assert 'eblocks_policy_denials_total{block="web",reason="fault_injected"' in text


async def test_at_the_edge_a_claimed_source_is_no_identity(
    session: aiohttp.ClientSession,
) -> None:
    """An ingress gateway's app: without a verified caller, per-source limits key on the
    address; a client that sent a new x-eblocks-source each time passed every limit."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    for edge, wanted in ((True, [200, 429, 429]), (False, [200, 200, 200])):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hello)
        if edge:
            app[EDGE_KEY] = True
        policies = live({"rate_limits": [{"rate": 0.001, "burst": 1, "per": "source"}]}, "web")
        async with Block("web", app=app, policies=policies) as block:
            got = [
                (await post(session, block, "/", **{SOURCE_HEADER: f"spoof{n}"}))[0]
                for n in range(3)
            ]
        assert got == wanted, edge  # inside the mesh (no mTLS) the header is the source


async def test_policies_change_without_a_restart(session: aiohttp.ClientSession) -> None:
    policies = live({})
    async with Block("store", echo, policies=policies) as block:
        assert [(await post(session, block))[0] for _ in range(3)] == [200] * 3
        limited = Policies.model_validate(
            {"blocks": {"store": {"rate_limits": [{"rate": 0.001, "burst": 1}]}}}
        )
        policies.swap(PolicyState.of(limited, version=1))
        assert [(await post(session, block))[0] for _ in range(3)] == [200, 429, 429]
        policies.swap(PolicyState.of(Policies(), version=2))
        assert (await post(session, block))[0] == 200


async def test_an_app_blocks_bulkhead_sheds_and_a_rate_limited_request_takes_no_slot(
    session: aiohttp.ClientSession,
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    policies = live(
        {
            "rate_limits": [{"match": {"path": {"prefix": "/limited"}}, "rate": 0.001, "burst": 1}],
            "bulkhead": {"max_concurrent": 2},
        },
        name="web",
    )
    async with Block("web", app=app, policies=policies) as block:
        held = [asyncio.ensure_future(post(session, block, "/limited"))]
        async with asyncio.timeout(10):
            while block.inflight < 1:  # noqa: ASYNC110 - the server side has no event to wait on
                await asyncio.sleep(0.01)
        status, headers, _ = await post(session, block, "/limited")  # refused before the bulkhead
        assert (status, headers[ERROR_HEADER]) == (429, "rate_limited")
        held.append(asyncio.ensure_future(post(session, block, "/other")))
        async with asyncio.timeout(10):
            while block.inflight < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        status, headers, _ = await post(session, block, "/third")
        assert (status, headers[ERROR_HEADER], headers[ORIGIN_HEADER]) == (503, "overloaded", "web")
        release.set()
        assert [(await t)[0] for t in held] == [200, 200]
        compartment = block.admission.bulkheads.cache.get()
        assert compartment is not None
        assert compartment.inside == 0


async def test_a_mesh_error_escaping_an_app_is_answered_with_its_reason(
    session: aiohttp.ClientSession,
) -> None:
    async def calls_the_mesh(request: web.Request) -> web.Response:
        raise NoEndpointsError("no ready instance of 'store'", detail={"target": "store"})

    app = web.Application()
    app.router.add_post("/", calls_the_mesh)
    async with Block("web", app=app) as block:
        status, headers, body = await post(session, block)
    assert (status, headers[ERROR_HEADER], headers[ORIGIN_HEADER]) == (503, "no_endpoints", "web")
    assert b'"target":"store"' in body


async def test_a_body_over_max_body_read_by_an_app_keeps_the_mesh_error_shape(
    session: aiohttp.ClientSession,
) -> None:
    async def reads(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application(client_max_size=1024)
    app.router.add_post("/", reads)
    settings = resolve_settings("web", None, Defaults(max_body=1024))
    async with Block("web", app=app, settings=settings) as block:
        url = f"http://127.0.0.1:{block.port}/"
        async with session.post(url, data=b"x" * 4096) as resp:
            status, headers, body = resp.status, resp.headers, await resp.read()
    assert (status, headers[ERROR_HEADER], headers[ORIGIN_HEADER]) == (413, "too_large", "web")
    assert b'"max_body":1024' in body
