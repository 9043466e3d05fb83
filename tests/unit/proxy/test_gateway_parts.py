"""The pure parts of the gateways: CORS, the message an outside request becomes, allow-lists."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import ValidationError

from eblocks import Context, Message
from eblocks.errors import BadRequestError, ForbiddenError, MeshTimeoutError, SecurityError
from eblocks.message import METHOD_HEADER, PATH_HEADER, USER_HEADER
from eblocks.proxy.cors import is_preflight, preflight_headers, response_headers
from eblocks.proxy.egress import Egress
from eblocks.proxy.ingress import _strip, mesh_message, reply_headers
from eblocks.spec.gateway import Cors, EgressGateway, EgressHost, IngressGateway
from eblocks.telemetry import Telemetry

CORS = Cors(allow_origins=("https://app.test",))


def _preflight(origin: str, method: str = "POST", asked: str = "") -> dict[str, str]:
    headers = {"origin": origin, "access-control-request-method": method}
    if asked:
        headers["access-control-request-headers"] = asked
    return headers


def test_a_preflight_is_an_options_with_origin_and_method() -> None:
    assert is_preflight("OPTIONS", _preflight("https://app.test"))
    assert not is_preflight("OPTIONS", {"origin": "https://app.test"})
    assert not is_preflight("POST", _preflight("https://app.test"))


def test_preflight_allows_only_listed_origins_methods_and_headers() -> None:
    ok = preflight_headers(CORS, _preflight("https://app.test", asked="Authorization"))
    assert ok["access-control-allow-origin"] == "https://app.test"
    assert ok["access-control-max-age"] == "600"
    assert preflight_headers(CORS, _preflight("https://evil.test")) == {}
    assert preflight_headers(CORS, _preflight("https://app.test", method="PATCH")) == {}
    assert preflight_headers(CORS, _preflight("https://app.test", asked="x-secret")) == {}


def test_wildcard_origin_and_credentials() -> None:
    anyone = Cors(allow_origins=("*",))
    assert response_headers(anyone, "https://x.test")["access-control-allow-origin"] == "*"
    assert response_headers(CORS, None) == {}
    with pytest.raises(ValidationError, match="allow_credentials"):
        Cors(allow_origins=("*",), allow_credentials=True)
    creds = Cors(allow_origins=("https://app.test",), allow_credentials=True)
    assert response_headers(creds, "https://app.test")["access-control-allow-credentials"] == "true"


def test_an_outside_request_never_sets_mesh_headers() -> None:
    msg = mesh_message(
        b"body",
        {
            "Content-Type": "text/plain",
            "Authorization": "Bearer abc",
            "X-Eblocks-Pattern": "evil",
            "X-Eblocks-User": "root",
            "Idempotency-Key": "k1",
            "traceparent": "00-1-2-01",
        },
        "/docs/7",
        "lang=en",
        "alice",
        "DELETE",
    )
    assert msg.body == b"body"
    assert dict(msg.headers) == {
        "content-type": "text/plain",
        "idempotency-key": "k1",
        PATH_HEADER: "/docs/7?lang=en",
        METHOD_HEADER: "DELETE",  # what a program behind a sidecar is asked for
        USER_HEADER: "alice",
    }
    empty = mesh_message(b"", {}, "/", "", None)
    assert empty.headers == {PATH_HEADER: "/", METHOD_HEADER: "POST"}


def test_a_prefix_is_stripped_at_a_segment_boundary_only() -> None:
    assert _strip("/docs/7", "/docs") == "/7"
    assert _strip("/docs", "/docs") == "/"
    assert _strip("/docsecret", "/docs") == "/docsecret"  # not a segment of it
    assert _strip("/docs/7", "/docs/") == "/7"
    assert _strip("/other", "/docs") == "/other"


def test_replies_lose_the_mesh_headers() -> None:
    assert reply_headers({"content-type": "a/b", "x-eblocks-stage": "2"}) == {"content-type": "a/b"}


def _egress(*hosts: EgressHost) -> Egress:
    return Egress(
        "outbound", EgressGateway(kind="egress", allow=hosts), spec_dir=Path("."), max_body=1024
    )


def test_egress_allow_list_matches_scheme_host_glob_and_port() -> None:
    egress = _egress(
        EgressHost(host="api.example.com"),
        EgressHost(host="*.internal.test", scheme="http", ports=(8080,)),
    )
    entry, scheme, port, host = egress.allowed("https://API.example.com/v1/x")
    assert (entry.host, scheme, port, host) == ("api.example.com", "https", 443, "api.example.com")
    assert egress.allowed("http://a.internal.test:8080/")[2] == 8080
    for refused in (
        "http://api.example.com/",  # wrong scheme
        "https://api.example.com:8443/",  # wrong port
        "http://a.internal.test/",  # port 80 not listed
        "https://example.org/",
    ):
        with pytest.raises(ForbiddenError) as caught:
            egress.allowed(refused)
        assert caught.value.detail["rule"] == "egress"
    for bad in ("ftp://api.example.com/", "/relative", "https://api.example.com:99999/"):
        with pytest.raises(BadRequestError):
            egress.allowed(bad)


def test_gateway_specs_are_checked() -> None:
    with pytest.raises(ValidationError, match="used twice"):
        IngressGateway.model_validate(
            {"kind": "ingress", "routes": [{"name": "a", "to": "x"}, {"name": "a", "to": "y"}]}
        )
    with pytest.raises(ValidationError, match="client_key"):
        EgressHost(host="h", client_cert="c.pem")
    with pytest.raises(ValidationError, match="scheme: https"):
        EgressHost(host="h", scheme="http", ca_file="ca.pem")


def test_an_egress_tls_file_that_cannot_load_stops_the_gateway_at_once_naming_it(
    tmp_path: Path,
) -> None:
    """Not a call later, as a handler failure: the instance stops at start (a config error)."""
    missing_ca = EgressHost(host="a.test", ca_file="certs/none.pem")
    with pytest.raises(SecurityError, match=r"allow\[1\]\.ca_file: cannot load .*certs/none\.pem"):
        Egress(
            "outbound",
            EgressGateway(kind="egress", allow=(EgressHost(host="b.test"), missing_ca)),
            spec_dir=tmp_path,
            max_body=1024,
        )
    (tmp_path / "key.pem").write_text("not a key", encoding="utf-8")
    bad_pair = EgressHost(host="a.test", client_cert="cert.pem", client_key="key.pem")
    with pytest.raises(
        SecurityError, match=r"allow\[0\]\.client_cert: cannot load certificate .*cert\.pem"
    ):
        Egress(
            "outbound",
            EgressGateway(kind="egress", allow=(bad_pair,)),
            spec_dir=tmp_path,
            max_body=1024,
        )


async def test_an_egress_timeout_is_counted_as_the_504_it_answers(
    tmp_path: Path, serve_app: Callable[[web.Application], Awaitable[int]]
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", slow)
    port = await serve_app(app)
    telemetry = Telemetry("outbound", "outbound-0")
    gateway = EgressGateway(
        kind="egress",
        timeout=0.2,
        allow=(EgressHost(host="127.0.0.1", scheme="http", ports=(port,)),),
    )
    egress = Egress("outbound", gateway, spec_dir=tmp_path, max_body=1024, telemetry=telemetry)
    url = f"http://127.0.0.1:{port}/slow"
    msg = Message(b"", {"x-eblocks-egress-url": url, "x-eblocks-egress-method": "GET"})
    try:
        with pytest.raises(MeshTimeoutError):
            await egress(msg, Context(block="outbound", instance="outbound-0", request_id="r"))
    finally:
        await egress.aclose()
    (series,) = list(telemetry.outbound)
    assert series.statuses == {504: 1}


async def test_the_egress_keeps_no_cookie_from_one_caller_for_the_next(
    tmp_path: Path, serve_app: Callable[[web.Application], Awaitable[int]]
) -> None:
    """One caller's login cookie went out on everyone's requests (a shared cookie jar)."""

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="in")
        response.set_cookie("session", "alice-secret")
        return response

    async def whoami(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("cookie", "-"))

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/whoami", whoami)
    port = await serve_app(app)
    gateway = EgressGateway(
        kind="egress", allow=(EgressHost(host="localhost", scheme="http", ports=(port,)),)
    )
    egress = Egress("outbound", gateway, spec_dir=tmp_path, max_body=1024)
    ctx = Context(block="outbound", instance="outbound-0", request_id="r")
    try:
        replies = []
        for path in ("/login", "/whoami"):
            url = f"http://localhost:{port}{path}"  # a name: a jar keeps no cookie of an IP
            headers = {"x-eblocks-egress-url": url, "x-eblocks-egress-method": "GET"}
            replies.append(await egress(Message(b"", headers), ctx))
    finally:
        await egress.aclose()
    assert (replies[0].header("set-cookie") or "").startswith("session=alice-secret")
    assert replies[1].body == b"-"  # the second caller's request carried no cookie
