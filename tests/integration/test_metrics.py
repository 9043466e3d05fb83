"""`/metrics` of every instance of a real mesh: promtool accepts it, the counts match the load.

The textpipe pipeline (clean -> tokenize x2 -> count) runs as real processes;
`eblocks submit` pushes a known set of documents through it. Each instance's
admin port is scraped, the text is checked by Prometheus' own `promtool check
metrics` (Debian package `prometheus`, installed by scripts/system-deps.sh)
and parsed; request counts and request bytes must equal the load exactly.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import Sandbox, make_documents, wait_for

pytestmark = pytest.mark.integration

DOCS = 60
GOSSIP_SPEC = """\
apiVersion: eblocks/v1
mesh: gossipm
defaults: {timeout: 10s, drain: 2s}
discovery: {mode: gossip, leave_drain: 0.5s}
blocks:
  clean: {handler: handlers:clean}
  tokenize: {handler: handlers:tokenize, replicas: 2}
"""

Samples = list[tuple[str, dict[str, str], float]]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run `bash scripts/system-deps.sh` (Debian: prometheus)")
    return found


def scrape(sandbox: Sandbox, mesh: str, row: dict[str, Any]) -> str:
    """``/metrics`` as a Prometheus with the mesh's client certificate scrapes it (https)."""
    access = sandbox.admin_access(mesh)
    url = access.row_url(row, "/metrics")
    with urllib.request.urlopen(url, timeout=5.0, context=access.ssl) as resp:
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        text: str = resp.read().decode()
        return text


def check_with_promtool(text: str) -> None:
    done = subprocess.run(
        [promtool(), "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"promtool: {done.stdout.decode()}{done.stderr.decode()}"
    # promtool prints lint problems (names, units, help) and still exits 0 for some
    assert done.stdout.decode().strip() == "", done.stdout.decode()
    assert done.stderr.decode().strip() == "", done.stderr.decode()


def samples(text: str) -> Samples:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def total(rows: Iterable[Samples], name: str, **labels: str) -> float:
    return sum(
        value
        for scraped in rows
        for sample_name, sample_labels, value in scraped
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_of_a_pipeline_under_a_known_load(sandbox: Sandbox) -> None:
    spec = sandbox.copy_textpipe()
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    docs = make_documents(DOCS, seed=7)
    folder = sandbox.work / "docs"
    folder.mkdir()
    for doc in docs:
        (folder / doc.name).write_bytes(doc.body)
    run = sandbox.cmd("submit", "ingest", "docs", "--concurrency", "8")
    assert run.returncode == 0, str(run)

    by_block: dict[str, list[Samples]] = defaultdict(list)
    for row in sandbox.instances("textpipe"):
        assert sandbox.admin_access("textpipe").tls(row["block"])  # mTLS strict: https
        text = scrape(sandbox, "textpipe", row)
        check_with_promtool(text)
        by_block[row["block"]].append(samples(text))
    assert sorted(by_block) == ["clean", "count", "tokenize"]
    assert len(by_block["tokenize"]) == 2

    ok = {"route": "ingest", "status_code": "200", "classification": "success"}
    hops = [("cli", "clean"), ("clean", "tokenize"), ("tokenize", "count")]
    for src, dst in hops:
        inbound = total(
            by_block[dst], "eblocks_requests_total", direction="inbound", src_block=src, **ok
        )
        assert inbound == DOCS, f"{src} -> {dst} inbound"
        if src != "cli":
            outbound = total(
                by_block[src], "eblocks_requests_total", direction="outbound", dst_block=dst, **ok
            )
            assert outbound == DOCS, f"{src} -> {dst} outbound"
        count = total(by_block[dst], "eblocks_request_duration_seconds_count", src_block=src)
        assert count == DOCS
        inf = total(
            by_block[dst], "eblocks_request_duration_seconds_bucket", src_block=src, le="+Inf"
        )
        assert inf == DOCS
    # every failure would be counted: there were none, and nothing was retried
    for rows in by_block.values():
        assert total(rows, "eblocks_requests_total", classification="failure") == 0
        assert total(rows, "eblocks_retries_total") == 0
        assert total(rows, "process_resident_memory_bytes") > 0
        assert total(rows, "process_cpu_seconds_total") > 0
        assert total(rows, "eblocks_build_info") == len(rows)
    # the bytes the CLI sent are exactly the documents' bytes
    sent = sum(len(d.body) for d in docs)
    assert total(by_block["clean"], "eblocks_request_bytes_total", src_block="cli") == sent
    _buckets_are_cumulative(by_block["count"][0])


def _buckets_are_cumulative(scraped: Samples) -> None:
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
    for name, labels, value in scraped:
        if name == "eblocks_request_duration_seconds_bucket":
            le = float(labels.pop("le"))
            series[tuple(sorted(labels.items()))].append((le, value))
    assert series
    for points in series.values():
        counts = [v for _, v in sorted(points)]
        assert counts == sorted(counts)


def test_gossip_members_by_status(sandbox: Sandbox) -> None:
    folder = sandbox.copy_textpipe().parent
    spec = folder / "gossip.yaml"
    spec.write_text(GOSSIP_SPEC, encoding="utf-8")
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    rows = sandbox.instances("gossipm")
    assert len(rows) == 3

    def all_see_three() -> bool:
        return all(
            total(
                [samples(scrape(sandbox, "gossipm", r))], "eblocks_gossip_members", status="alive"
            )
            == 3
            for r in rows
        )

    wait_for(all_see_three, timeout=30, what="every instance to count 3 alive members")
    text = scrape(sandbox, "gossipm", rows[0])
    check_with_promtool(text)
    assert total([samples(text)], "eblocks_gossip_members", status="dead") == 0
