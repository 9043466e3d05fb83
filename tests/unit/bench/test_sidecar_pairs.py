"""The `--sidecar` sides of `bench overhead`: paired ratios per pair, nginx configs, no nginx."""

from __future__ import annotations

from pathlib import Path

import pytest

from eblocks.bench import sidecars
from eblocks.bench.overhead import (
    BenchError,
    CellResult,
    OverheadReport,
    Sample,
    Side,
    summarize_sidecar,
)
from eblocks.bench.report import sidecar_table, to_markdown
from eblocks.bench.sidecars import NGINX_PAIR, PAIRS, SIDECAR_PAIR, find_nginx
from eblocks.spec import parse_spec


def _sample(kind: str, rnd: int, rps: float, p50: float, p99: float) -> Sample:
    return Sample(
        kind=kind, size=4096, concurrency=1, round=rnd, position=0, requests=int(rps),
        errors=0, error_kinds={}, elapsed_s=1.0, rps=rps, p50_ms=p50, p90_ms=p99, p99_ms=p99,
        mean_ms=p50, warmup_requests=1, warmup_errors=0, client_cpu_us=10.0, server_cpu_us=20.0,
    )  # fmt: skip


def test_each_pair_is_compared_with_direct_round_by_round() -> None:
    samples = [
        _sample("bare", 0, 1000, 1.0, 2.0),
        _sample(SIDECAR_PAIR, 0, 250, 3.0, 8.0),
        _sample(NGINX_PAIR, 0, 800, 1.5, 3.0),
        _sample("eblock", 0, 700, 1.4, 3.0),  # not a pair: left to `summarize`
        _sample("bare", 1, 500, 2.0, 4.0),  # a slow round: the ratios stay paired
        _sample(SIDECAR_PAIR, 1, 100, 5.0, 16.0),
        _sample(NGINX_PAIR, 1, 400, 2.5, 6.0),
        _sample("bare", 2, 1000, 1.0, 2.0),
        _sample(SIDECAR_PAIR, 2, 300, 2.0, 6.0),
        _sample(NGINX_PAIR, 2, 900, 1.2, 2.2),
    ]
    cells = {c.side: c for c in summarize_sidecar(samples)}
    assert set(cells) == set(PAIRS)
    pair, nginx = cells[SIDECAR_PAIR], cells[NGINX_PAIR]
    assert pair.rps_ratio == pytest.approx(0.25)  # median of 0.25, 0.2, 0.3
    assert pair.p99_ratio == pytest.approx(4.0)  # median of 4, 4, 3
    assert pair.p50_added_ms == pytest.approx(2.0)  # median of 2, 3, 1
    assert pair.plain.rps == 1000
    assert pair.secure.rps == 250
    assert nginx.rps_ratio == pytest.approx(0.8)  # median of 0.8, 0.8, 0.9
    assert nginx.secure.requests == 800 + 400 + 900


def test_the_report_puts_direct_in_process_and_both_pairs_side_by_side() -> None:
    samples = [_sample("bare", 0, 1000, 1.0, 2.0), _sample(SIDECAR_PAIR, 0, 250, 3.0, 8.0)]
    samples.append(_sample(NGINX_PAIR, 0, 800, 1.5, 3.0))
    side = Side(
        rps=1000, p50_ms=1.0, p99_ms=2.0, client_cpu_us=1, server_cpu_us=2, requests=1000, errors=0
    )
    eblock = Side(
        rps=700, p50_ms=1.4, p99_ms=3.0, client_cpu_us=1, server_cpu_us=2, requests=700, errors=0
    )
    report = OverheadReport(
        created="now",
        machine={"cpus": 2, "cpu": "x", "platform": "p", "python": "3", "aiohttp": "3",
                 "client_loop": "uvloop"},
        settings={"rounds": 1, "duration_s": 1.0, "warmup_s": 0.1},
        samples=samples,
        cells=[CellResult(4096, 1, side, eblock, 0.7, 0.4, 1.5)],
        sidecar_cells=summarize_sidecar(samples),
    )  # fmt: skip
    markdown = to_markdown(report).split("## Sidecars", 1)[1]
    rows = [line for line in markdown.splitlines() if line.startswith("| 4 KB | 1 |")]
    assert [row.split(" | ")[2] for row in rows] == [
        "direct", "eblock (in process)", SIDECAR_PAIR, NGINX_PAIR,
    ]  # fmt: skip
    assert "| 0.70 | 1.50 | +0.400 |" in rows[1]
    assert "| 0.25 | 4.00 | +2.000 |" in rows[2]
    assert "| 0.80 | 1.50 | +0.500 |" in rows[3]
    assert sidecar_table(report).row_count == 4


def test_without_nginx_the_error_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setattr(sidecars, "NGINX_PATH", str(tmp_path / "no-nginx"))
    with pytest.raises(BenchError, match="nginx-light"):
        find_nginx()


def test_the_nginx_config_is_a_keepalive_proxy_with_every_path_in_its_folder(
    tmp_path: Path,
) -> None:
    conf = sidecars._nginx_conf(tmp_path / "a", "127.0.0.1:8001", "127.0.0.1:8002")
    text = conf.read_text()
    assert "listen 127.0.0.1:8001;" in text
    assert "server 127.0.0.1:8002;" in text
    assert "keepalive 64;" in text
    assert "proxy_http_version 1.1;" in text
    assert 'proxy_set_header Connection "";' in text
    assert "daemon off;" in text
    assert "master_process off;" in text
    paths = [line.split()[1].rstrip(";") for line in text.splitlines() if "_path " in line]
    assert paths
    assert all(p.startswith(str(tmp_path / "a")) for p in paths)


def test_the_eblocks_pair_is_a_two_block_mesh_with_mtls_and_echo_published(
    tmp_path: Path,
) -> None:
    spec_file, state, access = sidecars._prepare_mesh("127.0.0.1", 8000, 8001, 8002, tmp_path / "m")
    spec = parse_spec(spec_file.read_text(), str(spec_file))
    assert spec.security.mtls == "strict"
    caller = spec.blocks["caller"].external
    assert caller is not None
    assert caller.upstreams == {"echo": 8001}
    endpoints = (state / "endpoints.json").read_text()
    assert '"port": 8002' in endpoints
    assert '"echo"' in endpoints
    assert any(state.rglob("svid.pem"))
    assert access.url("echo", "127.0.0.1", 9, "/readyz") == "https://127.0.0.1:9/readyz"
    assert access.ssl is not None  # the bench's own client/bench SVID
