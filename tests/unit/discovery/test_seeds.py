"""Seeds (static, DNS, the supervisor's file), the gossip key file, the members view, sim bench."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from eblocks.discovery.seeds import (
    parse_addr,
    prepare_key,
    read_key,
    read_keys,
    read_supervisor_seeds,
    resolve_dns,
    write_supervisor_seeds,
)
from eblocks.discovery.sim import SimNetwork, make_record
from eblocks.discovery.simbench import estimate_bytes, run_simulations, to_markdown
from eblocks.discovery.view import member_rows
from eblocks.errors import DiscoveryError
from eblocks.spec.models import DiscoverySpec


def test_parse_addr() -> None:
    assert parse_addr("10.0.0.2:7946") == ("10.0.0.2", 7946)
    assert parse_addr("[fd00::1]:7000") == ("fd00::1", 7000)
    for bad in ("10.0.0.2", "host:", ":1", "h:0", "h:70000"):
        with pytest.raises(DiscoveryError):
            parse_addr(bad)


def test_generated_key_is_private_and_kept(tmp_path: Path) -> None:
    path = prepare_key(DiscoverySpec(mode="gossip"), tmp_path, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_key(tmp_path)
    assert len(key) >= 32
    prepare_key(DiscoverySpec(mode="gossip"), tmp_path, tmp_path)
    assert read_key(tmp_path) == key  # a restart keeps the mesh's key


def test_spec_key_wins(tmp_path: Path) -> None:
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "gossip.key").write_bytes(b"from-a-file-0123456789\n")
    state = tmp_path / "state"
    state.mkdir()
    prepare_key(DiscoverySpec(mode="gossip", key_file="gossip.key"), tmp_path / "spec", state)
    assert read_key(state) == b"from-a-file-0123456789"
    prepare_key(DiscoverySpec(mode="gossip", key="inline-key-0123456789"), tmp_path, state)
    assert read_key(state) == b"inline-key-0123456789"


def test_bad_key_file(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="key_file"):
        prepare_key(DiscoverySpec(mode="gossip", key_file="missing"), tmp_path, tmp_path)
    (tmp_path / "short").write_bytes(b"short")
    with pytest.raises(DiscoveryError, match="at least 16 bytes"):
        prepare_key(DiscoverySpec(mode="gossip", key_file="short"), tmp_path, tmp_path)


def test_supervisor_seeds_round_trip(tmp_path: Path) -> None:
    assert read_supervisor_seeds(tmp_path) == {}
    write_supervisor_seeds(
        tmp_path,
        [
            {"instance": "a-0", "host": "127.0.0.1", "gossip_port": 4000},
            {"instance": "a-1", "host": "127.0.0.1", "gossip_port": 4001},
            {"instance": "a-2", "host": "127.0.0.1", "gossip_port": 0},  # not bound yet
        ],
    )
    assert read_supervisor_seeds(tmp_path, exclude="a-1") == {"a-0": ("127.0.0.1", 4000)}
    (tmp_path / "gossip.json").write_text("{not json")
    assert read_supervisor_seeds(tmp_path) == {}


async def test_dns_seeds() -> None:
    assert ("127.0.0.1", 7946) in await resolve_dns("localhost", 7946)
    assert await resolve_dns("no-such-host.invalid", 7946) == []


def test_join_after_start_reaches_late_seeds() -> None:
    net = SimNetwork(rng=random.Random(3))
    a, b = (net.add_node(make_record(i)) for i in range(2))
    for node in (a, b):
        node.start([])  # no seed known yet, as for the first local instance
        net.wake(node.record.gossip_addr)
    net.run(2.0)
    assert a.alive_count == b.alive_count == 0
    a.join([b.record.gossip_addr, a.record.gossip_addr])  # its own address is skipped
    net.wake(a.record.gossip_addr)
    net.wait_for(lambda: a.alive_count == b.alive_count == 1, timeout=5.0)

    rows = member_rows(a)
    assert [r["instance"] for r in rows] == [a.record.instance, b.record.instance]
    assert {r["status"] for r in rows} == {"alive"}
    assert member_rows(a, block="nope") == []
    assert rows[0]["gossip"] == f"{a.record.host}:{a.record.gossip_port}"


def test_sim_bench_refuses_what_cannot_fit() -> None:
    assert 4e9 < estimate_bytes(10_000) < 8e9  # compact views: ~60 B per entry
    report = run_simulations([10_000_000], memory_fraction=0.5)
    (row,) = report["results"]
    assert "GB" in row["refused"]
    assert "refused" in to_markdown(report)


def test_a_key_file_with_several_keys_is_copied_whole(tmp_path: Path) -> None:
    (tmp_path / "keys").write_bytes(b"new-key-0123456789abcdef\n\n  old-key-0123456789abcdef \n")
    (tmp_path / "state").mkdir()
    prepare_key(DiscoverySpec(mode="gossip", key_file="keys"), tmp_path, tmp_path / "state")
    assert read_keys(tmp_path / "state") == [
        b"new-key-0123456789abcdef",
        b"old-key-0123456789abcdef",
    ]
    assert read_key(tmp_path / "state") == b"new-key-0123456789abcdef"
    (tmp_path / "keys").write_bytes(b"new-key-0123456789abcdef\nshort\n")
    with pytest.raises(DiscoveryError, match="key 2 must be at least 16 bytes"):
        prepare_key(DiscoverySpec(mode="gossip", key_file="keys"), tmp_path, tmp_path / "state")
