"""Flags of `eblocks proxy` and the upstreams a spec declares (pure)."""

from __future__ import annotations

import pytest

from eblocks.sidecar.options import (
    Upstream,
    check_upstreams,
    exit_code_of,
    parse_upstream,
    spec_upstreams,
)
from eblocks.spec import parse_spec

SPEC = """apiVersion: eblocks/v1
mesh: m
blocks:
  web:
    external: {command: [./web], port: 8080, upstreams: {store: 9001, db: 9002, flow: 9003}}
  db:
    external: {command: [postgres], port: 5432, protocol: tcp}
  store: {handler: "h:store"}
patterns:
  flow: {pipeline: [store]}
"""


def test_parse_upstream_http_and_tcp() -> None:
    assert parse_upstream("store=18081") == Upstream("store", 18081, "http")
    assert parse_upstream(" db=15432/tcp ") == Upstream("db", 15432, "tcp")
    assert str(Upstream("db", 15432, "tcp")) == "db=15432/tcp"
    assert str(Upstream("store", 1)) == "store=1"


@pytest.mark.parametrize("text", ["store", "store=", "=80", "Store=80", "store=80/udp", "s=x"])
def test_parse_upstream_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="expected BLOCK=PORT or BLOCK=PORT/tcp"):
        parse_upstream(text)


def test_an_upstream_port_is_a_real_port() -> None:
    with pytest.raises(ValueError, match=r"port must be 1\.\.65535, got 70000"):
        parse_upstream("store=70000")


def test_spec_upstreams_take_their_targets_protocol() -> None:
    spec = parse_spec(SPEC)
    assert spec_upstreams(spec, "web") == (
        Upstream("db", 9002, "tcp"),
        Upstream("flow", 9003, "http"),
        Upstream("store", 9001, "http"),
    )
    assert spec_upstreams(spec, "store") == ()


def test_check_upstreams() -> None:
    spec = parse_spec(SPEC)
    check_upstreams([Upstream("store", 9001), Upstream("db", 9002, "tcp")], 8080, spec)
    with pytest.raises(ValueError, match="port 8080 is already the app's"):
        check_upstreams([Upstream("store", 8080)], 8080, spec)
    with pytest.raises(ValueError, match="port 9001 is already upstream 'store''s"):
        check_upstreams([Upstream("store", 9001), Upstream("db", 9001)], 8080, spec)
    with pytest.raises(ValueError, match="no block or pattern 'nope'"):
        check_upstreams([Upstream("nope", 9001)], 8080, spec)
    with pytest.raises(ValueError, match="a tcp upstream must be a block"):
        check_upstreams([Upstream("flow", 9001, "tcp")], 8080, spec)
    with pytest.raises(ValueError, match="need the mesh's spec"):
        check_upstreams([Upstream("store", 9001)], 8080, None)
    check_upstreams([], 8080, None)


def test_exit_code_of_an_app() -> None:
    assert exit_code_of(0) == 0
    assert exit_code_of(7) == 7
    assert exit_code_of(-15) == 143  # killed by SIGTERM, as a shell reports it
    assert exit_code_of(-9) == 137
