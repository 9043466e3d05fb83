"""Anomaly detection: the pure detector on a fake clock, and quarantine over real mTLS."""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from eblocks import Context, Message
from eblocks.message import TOKEN_HEADER
from eblocks.security.anomaly import AnomalyDetector, TrustState
from eblocks.security.local import identity_folder
from eblocks.spec.models import AnomalySpec

from .secmesh import SecureMesh, make_spec


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def detector(**overrides: Any) -> tuple[AnomalyDetector, Clock, list[tuple[str, str]]]:
    clock = Clock()
    events: list[tuple[str, str]] = []
    spec = AnomalySpec(**{"max_auth_failures": 5, "cooldown": 10, "readmit": 10, **overrides})
    found = AnomalyDetector(
        spec, now=clock, rng=random.Random(1), on_quarantine=lambda s, w: events.append((s, w))
    )
    return found, clock, events


def test_auth_failures_quarantine_then_readmit_gradually() -> None:
    d, clock, events = detector()
    for _ in range(4):
        d.record("bad", auth_failure=True)
    allowed, trust = d.allow("bad")
    assert allowed
    assert trust == pytest.approx(0.2)
    d.record("bad", auth_failure=True)
    assert events == [("bad", "5 authentication failures in 10s")]
    assert d.allow("bad") == (False, 0.0)
    assert d.allow("good") == (True, 1.0)
    clock.t += 10
    admitted = [d.allow("bad")[0] for _ in range(200)]
    assert d.sources["bad"].state is TrustState.READMITTING
    assert not any(admitted)  # the ramp starts at 0 %
    clock.t += 5
    share = sum(d.allow("bad")[0] for _ in range(1000)) / 1000
    assert 0.4 < share < 0.6
    assert d.trust("bad") == pytest.approx(0.5)
    clock.t += 5
    assert d.allow("bad") == (True, 1.0)
    assert d.sources["bad"].state.value == "trusted"


def test_failures_outside_the_window_do_not_count() -> None:
    d, clock, events = detector()
    for _ in range(4):
        d.record("s", auth_failure=True)
        clock.t += 3  # 4 failures spread over 12 s: never 5 in one 10 s window
    d.record("s", auth_failure=True)
    assert events == []


def test_trust_recovers_as_failures_leave_the_window_without_new_requests() -> None:
    d, clock, _ = detector()
    d.record("s", auth_failure=True)
    clock.t += 4
    for _ in range(2):
        d.record("s", auth_failure=True)
    assert d.trust("s") == pytest.approx(0.4)  # 3 of 5 inside the window
    clock.t += 7  # the first failure is out of the 10 s window; nothing recorded since
    assert d.trust("s") == pytest.approx(0.6)
    allowed, trust = d.allow("s")
    assert allowed
    assert trust == pytest.approx(0.6)
    clock.t += 10
    assert d.trust("s") == 1.0
    assert d.sources["s"].totals == [0, 0, 0, 0]  # the running sums left with their buckets


def test_denials_and_error_ratio_thresholds() -> None:
    d, _, events = detector(max_denials=3, max_error_ratio=0.5, min_requests=4)
    for _ in range(3):
        d.record("denied", denied=True)
    d.record("errs")
    d.record("errs")
    d.record("errs", error=True)
    d.record("errs", error=True)
    assert [s for s, _ in events] == ["denied", "errs"]
    assert "error ratio 0.50" in events[1][1]


def test_rate_against_the_ewma_baseline() -> None:
    d, clock, events = detector(rate_factor=5, min_rate=20, baseline_seconds=5, ewma_alpha=0.5)
    for _ in range(10):  # a steady 10 req/s
        for _ in range(10):
            d.record("s")
        clock.t += 1
    assert events == []
    for _ in range(60):  # a burst: 60 in one second
        d.record("s")
    assert len(events) == 1
    assert "against a baseline" in events[0][1]


def test_quiet_sources_are_forgotten_when_full() -> None:
    d, clock, _ = detector(max_sources=16)
    for i in range(16):
        d.record(f"s{i}")
    clock.t += 60
    d.record("new")
    assert set(d.sources) == {"new"}


async def test_a_source_hammering_with_bad_tokens_is_quarantined_others_are_not(
    secure_mesh: Callable[..., SecureMesh], caplog: pytest.LogCaptureFixture
) -> None:
    spec = make_spec(
        "security: {tokens: {mode: required}, anomaly: {max_auth_failures: 5, cooldown: 60s}}"
    )

    async def whoami(msg: Message, ctx: Context) -> dict[str, Any]:
        return {"peer": ctx.peer, "trust": ctx.trust}

    mesh = secure_mesh(spec)
    block = await mesh.start("front", whoami)
    good = mesh.client("cli")
    mesh.auth("attacker")
    folder = identity_folder(mesh.state, "attacker")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_cert_chain(folder / "svid.pem", folder / "svid.key")
    ctx.load_verify_locations(folder / "bundle.pem")
    statuses: list[tuple[int, str]] = []
    with caplog.at_level(logging.WARNING, logger="eblocks.audit"):
        async with aiohttp.ClientSession() as session:
            for _ in range(7):
                async with session.post(
                    f"https://127.0.0.1:{block.port}/",
                    data=b"x",
                    headers={TOKEN_HEADER: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"},
                    ssl=ctx,
                ) as resp:
                    statuses.append((resp.status, resp.headers["x-eblocks-error"]))
                    body = await resp.json()
    assert statuses[:5] == [(401, "unauthenticated")] * 5
    assert statuses[5:] == [(403, "forbidden")] * 2
    assert body["rule"] == "quarantine"
    assert "spiffe://eblocks.local/mesh/sec/client/attacker is quarantined" in body["message"]
    assert any(
        "quarantine spiffe://eblocks.local/mesh/sec/client/attacker at front" in r.getMessage()
        for r in caplog.records
    )
    reply = await good.call("front", Message(b"ok"))
    assert reply.json() == {"peer": "spiffe://eblocks.local/mesh/sec/client/cli", "trust": 1.0}
    assert block.auth is not None
    stats = block.auth.stats()
    assert stats["counters"]["quarantined"] == 1
    assert stats["counters"]["quarantine_refused"] == 2
    assert list(stats["quarantined"]) == ["spiffe://eblocks.local/mesh/sec/client/attacker"]
