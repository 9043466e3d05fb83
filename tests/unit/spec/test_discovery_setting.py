"""The `discovery` section: supervisor by default, gossip with key, seeds, DNS and tunables."""

from __future__ import annotations

import pytest

from eblocks.errors import SpecError
from eblocks.spec import parse_spec

HEAD = "apiVersion: eblocks/v1\nmesh: m\nblocks:\n  a: {handler: h:a}\n"


def _issue(text: str) -> tuple[int | None, str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(HEAD + text)
    (issue,) = caught.value.issues
    return issue.line, issue.path, issue.message


def test_supervisor_is_the_default() -> None:
    spec = parse_spec(HEAD)
    assert spec.discovery.mode == "supervisor"
    assert spec.discovery.seeds == ()


def test_gossip_with_seeds_dns_and_tunables() -> None:
    spec = parse_spec(
        HEAD
        + "discovery:\n  mode: gossip\n  key_file: gossip.key\n"
        + "  seeds: ['10.0.0.2:7946', '[fd00::1]:7946', 'node-a.example:7000']\n"
        + "  dns: eblocks-gossip.default.svc\n  port: 7946\n  leave_drain: 250ms\n"
        + "  tunables: {probe_interval: 1s, probe_timeout: 300ms, gossip_fanout: 4}\n"
    )
    d = spec.discovery
    assert (d.mode, d.key_file, d.dns, d.port, d.leave_drain) == (
        "gossip",
        "gossip.key",
        "eblocks-gossip.default.svc",
        7946,
        0.25,
    )
    assert d.seeds == ("10.0.0.2:7946", "[fd00::1]:7946", "node-a.example:7000")
    config = d.swim_config()
    assert (config.probe_interval, config.probe_timeout, config.gossip_fanout) == (1.0, 0.3, 4)
    assert config.indirect_probes == 3  # untouched tunables keep their defaults


def test_key_and_key_file_are_exclusive() -> None:
    line, path, message = _issue("discovery: {mode: gossip, key: 0123456789abcdef, key_file: k}\n")
    assert (line, path) == (5, "discovery")
    assert "at most one of 'key' or 'key_file'" in message


def test_short_key_is_refused() -> None:
    _, path, message = _issue("discovery: {mode: gossip, key: short}\n")
    assert path == "discovery.key"
    assert "16" in message


@pytest.mark.parametrize("seed", ["10.0.0.2", "10.0.0.2:", ":7946", "host:99999", "a b:1"])
def test_bad_seed_is_refused(seed: str) -> None:
    _, path, _ = _issue(f"discovery: {{mode: gossip, seeds: ['{seed}']}}\n")
    assert path.startswith("discovery")


def test_gossip_settings_need_gossip_mode() -> None:
    _, path, message = _issue("discovery: {seeds: ['10.0.0.2:7946']}\n")
    assert path == "discovery"
    assert "only apply to 'mode: gossip'" in message


def test_unknown_mode_and_tunable_are_refused() -> None:
    _, path, _ = _issue("discovery: {mode: consul}\n")
    assert path == "discovery.mode"
    _, path, _ = _issue("discovery: {mode: gossip, tunables: {probe_every: 1s}}\n")
    assert path == "discovery.tunables.probe_every"


def test_tunables_are_checked_together() -> None:
    _, path, message = _issue(
        "discovery:\n  mode: gossip\n  tunables: {probe_interval: 200ms, probe_timeout: 500ms}\n"
    )
    assert path == "discovery"
    assert "probe_timeout must be shorter than probe_interval" in message
