"""The router's query parameters: one a route does not take is a 400 naming the accepted ones.

These requests are refused before the router calls the mesh, so the app runs alone
(aiohttp's test server); tests/integration/test_docproc.py drives it on a real mesh.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from docproc.router import app


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app())) as test_client:
        yield test_client


async def test_a_search_by_risk_is_refused_and_names_level(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/v1/documents", params={"risk": "high"})
    assert resp.status == 400
    body = await resp.json()
    assert body["unknown"] == ["risk"]
    assert body["accepted"] == ["keyword", "level", "topic", "limit", "offset"]
    message = body["message"]
    assert "'risk'" in message
    assert "the risk level is 'level'" in message
    assert "accepted: keyword, level, topic, limit, offset" in message


@pytest.mark.parametrize(
    ("method", "path", "query", "unknown", "accepted"),
    [
        (
            "GET",
            "/v1/documents",
            "level=high&sort=name",
            "sort",
            "keyword, level, topic, limit, offset",
        ),
        ("POST", "/v1/documents", "pattern=ingest&level=high", "level", "pattern, risk, name"),
        ("POST", "/v1/batch", "name=a.txt", "name", "pattern, risk"),
        ("GET", "/v1/documents/abc", "verbose=1", "verbose", "no query parameters"),
        ("GET", "/v1/counters", "window=60", "window", "no query parameters"),
    ],
)
async def test_every_api_route_refuses_parameters_it_does_not_take(
    client: TestClient[web.Request, web.Application],
    method: str,
    path: str,
    query: str,
    unknown: str,
    accepted: str,
) -> None:
    resp = await client.request(method, f"{path}?{query}", data=b"text")
    assert resp.status == 400
    body = await resp.json()
    assert body["unknown"] == [unknown]
    assert f"unknown query parameter '{unknown}' for {method} {path}" in body["message"]
    assert body["message"].endswith(f"accepted: {accepted}")


async def test_several_unknown_parameters_are_all_named(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/v1/documents?risk=high&kind=memo&keyword=budget")
    assert resp.status == 400
    body = await resp.json()
    assert body["unknown"] == ["kind", "risk"]
    assert "unknown query parameters 'kind', 'risk' for GET /v1/documents" in body["message"]


async def test_an_unknown_level_is_refused(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/v1/documents", params={"level": "severe"})
    assert resp.status == 400
    assert "level must be low, medium or high, got 'severe'" in (await resp.json())["message"]
