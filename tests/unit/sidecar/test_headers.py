"""What crosses the proxy toward the app and back (pure)."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from eblocks.policies.target import request_target
from eblocks.sidecar.headers import deadline_of, to_app, to_caller
from eblocks.sidecar.websocket import is_upgrade


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_to_app_drops_hop_by_hop_and_mesh_only_headers_and_says_who_called() -> None:
    incoming = _headers(
        ("Host", "web"),
        ("Connection", "keep-alive, X-Private"),
        ("X-Private", "hop"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("TE", "trailers"),
        ("x-eblocks-token", "jwt"),
        ("x-eblocks-peer", "spiffe://forged"),
        ("Expect", "100-continue"),
        ("Accept", "a"),
        ("Accept", "b"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("Content-Length", "12"),
    )
    out = to_app(
        incoming, peer="spiffe://d/mesh/m/block/caller", remote="127.0.0.1", scheme="https"
    )
    assert out.getall("accept") == ["a", "b"]
    assert out["host"] == "web"
    assert out["content-length"] == "12"
    assert out["x-eblocks-peer"] == "spiffe://d/mesh/m/block/caller"
    assert out["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert out["x-forwarded-proto"] == "https"
    for gone in ("connection", "x-private", "keep-alive", "transfer-encoding", "te", "expect"):
        assert gone not in out
    assert "x-eblocks-token" not in out


def test_to_app_without_a_verified_peer_sends_no_peer_header() -> None:
    out = to_app(_headers(("x-eblocks-peer", "forged")), peer=None, remote=None, scheme="http")
    assert "x-eblocks-peer" not in out
    assert "x-forwarded-for" not in out


def test_to_app_for_a_websocket_leaves_the_handshake_to_the_client() -> None:
    incoming = _headers(
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "k"),
        ("Sec-WebSocket-Version", "13"),
        ("Cookie", "c=1"),
    )
    out = to_app(incoming, peer=None, remote=None, scheme="http", websocket=True)
    assert dict(out) == {"Cookie": "c=1", "x-forwarded-proto": "http"}


def test_to_caller_leaves_framing_to_the_server() -> None:
    out = to_caller(
        _headers(
            ("Content-Length", "3"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Content-Type", "text/plain"),
        )
    )
    assert out.getall("set-cookie") == ["a=1", "b=2"]
    assert set(out) == {"Set-Cookie", "Content-Type"}


def test_request_target_restores_a_mesh_calls_path_and_method() -> None:
    mesh_call = {"x-eblocks-path": "/items/7?full=1", "x-eblocks-method": "delete"}
    assert request_target("POST", "/", mesh_call) == ("DELETE", "/items/7?full=1")
    assert request_target("POST", "/", {"x-eblocks-path": "items"}) == ("POST", "/items")
    assert request_target("POST", "/", {"x-eblocks-path": "/x", "x-eblocks-method": "G T"}) == (
        "POST",
        "/x",
    )
    # anything but a mesh call's POST / goes as it came
    assert request_target("GET", "/a?b", mesh_call) == ("GET", "/a?b")
    assert request_target("POST", "/upload", mesh_call) == ("POST", "/upload")
    assert request_target("POST", "/", {}) == ("POST", "/")


def test_deadline_of() -> None:
    assert deadline_of({"x-eblocks-timeout-ms": "1500"}) == 1.5
    assert deadline_of({"x-eblocks-timeout-ms": "0"}) == 0.001
    assert deadline_of({"x-eblocks-timeout-ms": "soon"}) is None
    assert deadline_of({}) is None


def test_is_upgrade() -> None:
    assert is_upgrade({"upgrade": "WebSocket", "connection": "keep-alive, Upgrade"})
    assert not is_upgrade({"upgrade": "websocket"})
    assert not is_upgrade({"upgrade": "h2c", "connection": "upgrade"})
    assert not is_upgrade({})
