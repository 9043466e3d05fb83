"""The docproc case study on a real mesh: integrity, kill -9 of the decrypt pool, the router."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from playwright.async_api import expect

from .browser import TIMEOUT_MS, chromium_page
from .helpers import REPO, Sandbox, alive, parse_table, wait_for

pytestmark = pytest.mark.integration

DOCPROC = REPO / "examples" / "docproc"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key store for the module: RSA-4096 generation is slow, the keys are not the test."""
    from docproc.keystore import KeyStore

    folder = tmp_path_factory.mktemp("docproc-keys")
    KeyStore(folder).ensure()
    return folder


def _corpus(sandbox: Sandbox, count: int, seed: int = 11) -> Path:
    run = sandbox.eblocks(
        "docproc", "corpus", "--count", str(count), "--out", "corpus", "--seed", str(seed)
    )
    assert run.returncode == 0, str(run)
    labels = sandbox.work / "corpus" / "labels.jsonl"
    labels.rename(sandbox.root / "labels.jsonl")  # submit sends every file of the folder
    return sandbox.work / "corpus"


def _env(sandbox: Sandbox, keys: Path, **extra: str) -> dict[str, str]:
    return {"DOCPROC_HOME": str(sandbox.root / "data"), "DOCPROC_KEYS": str(keys), **extra}


def _counts(sandbox: Sandbox, mesh: str, env: dict[str, str]) -> dict[str, Any]:
    run = sandbox.cmd("call", "store", "--data", '{"op": "counts"}', "--mesh", mesh, env=env)
    assert run.returncode == 0, str(run)
    counts: dict[str, Any] = json.loads(run.stdout)["counts"]
    return counts


def _summary(text: str) -> dict[str, str]:
    return {row[0]: row[1] for row in parse_table(text) if len(row) == 2}


def test_scenario_a_stores_and_reads_back_every_document_byte_for_byte(
    sandbox: Sandbox, keys: Path
) -> None:
    corpus = _corpus(sandbox, 60)
    env = _env(sandbox, keys)
    up = sandbox.up(DOCPROC / "scenario-a.yaml", env=env)
    assert up.returncode == 0, str(up)

    run = sandbox.cmd(
        "submit", "process", str(corpus), "--concurrency", "8", "--out", "replies", env=env
    )

    assert run.returncode == 0, str(run)
    assert _summary(run.stdout).get("documents ok") == "60", str(run)
    originals = sorted(p for p in corpus.glob("*.txt"))
    for path in originals:
        assert (sandbox.work / "replies" / path.name).read_bytes() == path.read_bytes(), path.name
    counts = _counts(sandbox, "docproc-a", env)
    assert counts["total"] == 60, counts


def test_kill_9_of_decrypt_workers_loses_and_duplicates_nothing(
    sandbox: Sandbox, keys: Path
) -> None:
    corpus = _corpus(sandbox, 300, seed=5)
    env = _env(sandbox, keys)
    up = sandbox.up(DOCPROC / "scenario-c.yaml", env=env)
    assert up.returncode == 0, str(up)
    submit = sandbox.start(
        "submit", "process", str(corpus), "--concurrency", "16", "--out", "replies", env=env
    )
    replies = sandbox.work / "replies"
    killed = 0
    for round_ in range(3):  # kill one decrypt worker, then the other, then the first again
        wanted = 40 * (round_ + 1)

        def progressed(wanted: int = wanted) -> bool:
            return len(list(replies.glob("*.txt"))) >= wanted or submit.poll() is not None

        wait_for(progressed, timeout=120, what=f"{wanted} documents read back")
        if submit.poll() is not None:
            break
        workers = [
            r for r in sandbox.instances("docproc-c") if r["block"] == "decrypt" and r["ready"]
        ]
        assert workers, sandbox.instances("docproc-c")
        victim = psutil.Process(workers[round_ % len(workers)]["pid"])
        assert "eblocks.runtime.instance" in victim.cmdline()
        victim.send_signal(signal.SIGKILL)
        psutil.wait_procs([victim], timeout=10)
        assert not alive(victim)
        killed += 1
    code = submit.wait(timeout=300)
    out, err = sandbox.output_of(submit)
    assert killed >= 2, "the run ended before the workers were killed (make it longer)"
    assert code == 0, f"exit {code}\n{out}\n{err}"
    assert _summary(out).get("documents ok") == "300", out
    for path in corpus.glob("*.txt"):
        assert (replies / path.name).read_bytes() == path.read_bytes(), path.name
    counts = _counts(sandbox, "docproc-c", env)
    assert counts["total"] == 300, counts  # one row per document: retries wrote nothing twice


def test_batched_read_back_survives_kill_9_and_names_bad_ids(sandbox: Sandbox, keys: Path) -> None:
    """Scenario B, 8 documents a request: each batch is one decrypt task; killing workers
    mid-run retries whole batches elsewhere, and every document comes back byte for byte."""
    from docproc.drive import drive, load_documents
    from docproc.meshrun import RunningMesh
    from eblocks import Message
    from eblocks.errors import MeshError

    docs = load_documents(_corpus(sandbox, 320, seed=3))
    env = _env(sandbox, keys)
    up = sandbox.up(DOCPROC / "scenario-b.yaml", env=env)
    assert up.returncode == 0, str(up)
    mesh = RunningMesh(DOCPROC / "scenario-b.yaml", sandbox.state_root, {**sandbox.env, **env})

    def kill_a_worker(round_: int) -> None:
        workers = [r for r in mesh.instances() if r["block"] == "decrypt" and r["ready"]]
        assert workers, mesh.instances()
        victim = psutil.Process(workers[round_ % len(workers)]["pid"])
        assert "eblocks.runtime.instance" in victim.cmdline()
        victim.send_signal(signal.SIGKILL)
        psutil.wait_procs([victim], timeout=10)

    async def refused(client: Any, body: dict[str, list[str]]) -> str:
        with pytest.raises(MeshError) as caught:
            await client.call("readback", Message.of(body))
        return caught.value.message

    async def scenario() -> tuple[int, list[Any], str, str]:
        async with mesh.client() as client:
            stored, _ = await drive(client, "ingest", docs, concurrency=16)
            assert all(r.ok for r in stored), [r.name for r in stored if not r.ok]
            ids = {r.name: r.doc_id for r in stored}
            with_ids = [type(d)(d.name, d.body, ids[d.name]) for d in docs]
            count = 0
            reached = [asyncio.Event(), asyncio.Event()]  # 80 and 160 documents read back

            def tick(_: Any) -> None:
                nonlocal count
                count += 1
                for i, event in enumerate(reached):
                    if count >= 80 * (i + 1):
                        event.set()

            reading = asyncio.create_task(
                drive(
                    client,
                    "readback",
                    with_ids,
                    read_path=True,
                    batch=8,
                    concurrency=4,
                    progress=tick,
                )
            )
            killed = 0
            for round_, event in enumerate(reached):
                waiting = asyncio.create_task(event.wait())
                await asyncio.wait({reading, waiting}, timeout=120, return_when="FIRST_COMPLETED")
                waiting.cancel()
                if reading.done():
                    break
                await asyncio.to_thread(kill_a_worker, round_)
                killed += 1
            results, _ = await asyncio.wait_for(reading, 300)
            missing = await refused(client, {"ids": [with_ids[0].doc_id or "", "no-such-doc"]})
            empty = await refused(client, {"ids": []})
            return killed, results, missing, empty

    killed, results, missing, empty = asyncio.run(scenario())

    assert killed == 2, "the read-back ended before both kills (make it longer)"
    assert [r.name for r in results if not (r.ok and r.verified)] == []
    assert len(results) == 320
    assert "fetch: no document 'no-such-doc'" in missing
    assert "'ids' must be a non-empty list" in empty
    assert _counts(sandbox, "docproc-b", env)["total"] == 320  # reading wrote nothing


PRIVATE = b"""Patient Discharge Summary

The patient was discharged after the cardiology review. Questions about the discharge
go to chiara.navarro@example.com or, after hours, to chiaranavarro@woodgrove-bank.com.
Chiaranavarro@woodgrove-bank.com confirmed the follow-up appointment. Call +34 612 345 678
for the pharmacy. Refunds go to IBAN DE89 3704 0044 0532 0130 00 or card 4111 1111 1111 1111.
Write to chiara.navarro@example.com again before the next appointment.
"""


def _http(
    url: str,
    tls: ssl.SSLContext,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=tls) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_router_uploads_searches_and_opens_by_permission(sandbox: Sandbox, keys: Path) -> None:
    env = _env(sandbox, keys, DOCPROC_READER_TOKEN="letmein")
    up = sandbox.up(DOCPROC / "mesh.yaml", env=env)
    assert up.returncode == 0, str(up)
    (row,) = [r for r in sandbox.instances("docproc") if r["block"] == "router"]
    base = f"https://{row['host']}:{row['port']}"
    # An external client: server authentication against the mesh's bundle, no client cert.
    # (An SVID names a SPIFFE ID, not a host name: the chain is what is checked.)
    tls = ssl.create_default_context(
        cafile=str(sandbox.mesh_dir("docproc") / "identity" / "cli" / "bundle.pem")
    )
    tls.check_hostname = False
    with pytest.raises((ConnectionResetError, urllib.error.URLError)):  # no plain HTTP
        urllib.request.urlopen(f"http://{row['host']}:{row['port']}/", timeout=10)
    text = b"Quarterly budget review. Contact finance at ana.lopez@example.com.\n"

    status, low = _http(f"{base}/v1/documents?name=memo.txt", tls, data=text)
    assert status == 200, low
    assert low["ok"], low
    assert low["verified"], low
    status, high = _http(
        f"{base}/v1/documents?name=secret.txt&risk=high", tls, data=b"Top secret.\n"
    )
    assert status == 200, high
    assert high["level"] == "high", high

    status, found = _http(f"{base}/v1/documents?level=high", tls)
    assert status == 200
    assert [d["name"] for d in found["documents"]] == ["secret.txt"]
    status, refused = _http(f"{base}/v1/documents?risk=high", tls)  # not a search parameter
    assert status == 400, refused
    assert refused["unknown"] == ["risk"], refused
    assert "accepted: keyword, level, topic, limit, offset" in refused["message"], refused
    status, opened = _http(f"{base}/v1/documents/{urllib.parse.quote(high['id'])}", tls)
    assert status == 200
    assert opened["allowed"] is False
    assert opened["text"] is None
    status, opened = _http(
        f"{base}/v1/documents/{urllib.parse.quote(high['id'])}",
        tls,
        headers={"authorization": "Bearer letmein"},
    )
    assert opened["allowed"] is True
    assert opened["text"] == "Top secret.\n"
    with urllib.request.urlopen(f"{base}/", timeout=10, context=tls) as resp:
        assert b"docproc" in resp.read()

    # What anyone may read of a high-risk document holds nothing the risk stage flagged.
    status, private = _http(f"{base}/v1/documents?name=discharge.txt", tls, data=PRIVATE)
    assert status == 200, private
    assert private["level"] == "high", private
    status, opened = _http(f"{base}/v1/documents/{urllib.parse.quote(private['id'])}", tls)
    assert (status, opened["allowed"], opened["text"]) == (200, False, None), opened
    status, listed = _http(f"{base}/v1/documents?level=high&topic=health", tls)
    assert [d["id"] for d in listed["documents"]] == [private["id"]], listed
    for served in (opened["document"], listed["documents"][0]):
        assert served["keywords"], served
        words = {w.lower() for term in served["keywords"] for w in re.findall(r"\w+", term)}
        flat = json.dumps(served).lower()
        for part in ("chiara", "navarro", "chiaranavarro", "woodgrove", "example", "bank"):
            assert part not in words, (part, served["keywords"])
        for part in ("chiara", "navarro", "woodgrove", "612 345", "3704 0044", "4111 1111"):
            assert part not in flat, (part, served)

    status, counters = _http(f"{base}/v1/counters", tls)
    assert counters["processed"] == 3, counters
    assert counters["store"]["total"] == 3, counters


def test_the_ui_uploads_lists_and_opens_in_headless_chromium(sandbox: Sandbox, keys: Path) -> None:
    env = _env(sandbox, keys, DOCPROC_READER_TOKEN="letmein")
    up = sandbox.up(DOCPROC / "mesh.yaml", env=env)
    assert up.returncode == 0, str(up)
    (row,) = [r for r in sandbox.instances("docproc") if r["block"] == "router"]
    upload = sandbox.work / "upload"
    upload.mkdir()
    (upload / "plain.txt").write_text("A travel itinerary for the team offsite.\n")
    (upload / "card.txt").write_text("Refund to card 4111 1111 1111 1111 please.\n")
    files = sorted(str(p) for p in upload.iterdir())
    asyncio.run(_drive_ui(f"https://{row['host']}:{row['port']}/", files))


async def _drive_ui(address: str, files: list[str]) -> None:
    # The router's certificate is the mesh's SVID: trusted by the bundle, not by Chromium.
    async with chromium_page(ignore_https_errors=True) as tab:
        page = tab.page
        await page.goto(address)
        processed = page.locator("#c-processed")
        await expect(processed).to_have_text("0", timeout=TIMEOUT_MS)
        await page.set_input_files("#files", files)
        await page.click("#upload button")

        rows = page.locator("#rows tr")
        await expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
        assert sorted(await rows.locator("td:first-child").all_text_contents()) == [
            "card.txt",
            "plain.txt",
        ]
        await expect(processed).to_have_text("2", timeout=TIMEOUT_MS)
        levels = await rows.evaluate_all(
            "rows => Object.fromEntries("
            "rows.map(r => [r.cells[0].textContent, r.cells[1].textContent]))"
        )
        assert levels["card.txt"] == "high", levels
        card = rows.filter(has=page.locator("td:first-child", has_text="card.txt"))
        viewer = page.locator("#viewer-text")
        await card.locator("button").click()  # without the token: refused
        await expect(viewer).to_have_text(re.compile("^Not allowed"), timeout=TIMEOUT_MS)
        assert "reader token" in (await viewer.text_content() or "")
        await page.fill("#token", "letmein")
        await card.locator("button").click()
        await expect(viewer).to_contain_text("4111", timeout=TIMEOUT_MS)
        assert await viewer.text_content() == "Refund to card 4111 1111 1111 1111 please.\n"
        assert tab.errors == []


def test_the_demo_runs_end_to_end_and_stops_its_mesh(sandbox: Sandbox) -> None:
    workdir = sandbox.root / "demo"
    run = sandbox.eblocks(
        "docproc", "demo", "--count", "40", "--workdir", str(workdir), timeout=300
    )
    assert run.returncode == 0, str(run)
    summary = _summary(run.stdout)
    assert summary.get("documents ingested") == "40 of 40", run.stdout
    assert summary.get("read back, bytes identical") == "40 of 40", run.stdout
    # The UI is gone by the time the output is read: it is not offered as if it were up.
    assert "UI: " not in run.stdout
    assert "reader token" not in run.stdout
    lines = run.stdout.splitlines()
    assert lines[-2] == "6. eblocks down", run.stdout
    assert re.fullmatch(
        r"the UI was served at https://127\.0\.0\.1:\d+/ during the run and stopped with "
        r"the mesh; `eblocks docproc demo --keep` leaves it up",
        lines[-1],
    ), run.stdout
    assert (workdir / "state" / "docproc" / "supervisor.json").exists()
    assert sandbox.processes() == []  # the demo stopped everything it started


def test_the_kept_demo_prints_a_working_way_to_reach_its_ui(sandbox: Sandbox) -> None:
    """``--keep``: the UI's address, the reader token and a command that verifies the
    server against the mesh's bundle (curl cannot: the SVID names no host); then the
    printed ``eblocks down`` stops the mesh."""
    run = sandbox.eblocks(
        "docproc", "demo", "--count", "10", "--keep", "--workdir", str(sandbox.root), timeout=300
    )
    assert run.returncode == 0, str(run)
    ui = re.search(r"^UI: (https://127\.0\.0\.1:\d+)/ ", run.stdout, re.MULTILINE)
    assert ui, run.stdout
    token = re.search(r"^reader token .*: (\S+)$", run.stdout, re.MULTILINE)
    assert token, run.stdout
    bundle = sandbox.state_root / "docproc" / "identity" / "cli" / "bundle.pem"
    assert f"the mesh's CA bundle (to trust it): {bundle};" in run.stdout
    (verify,) = [line.strip() for line in run.stdout.splitlines() if "cafile" in line]
    assert verify.endswith(f" {bundle} {ui[1]}/v1/counters"), verify

    checked = subprocess.run(
        ["bash", "-c", verify], capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked
    assert json.loads(checked.stdout)["store"]["total"] == 10
    if shutil.which("curl"):  # what the output says about curl is so
        curl = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", str(bundle), f"{ui[1]}/v1/counters"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert curl.returncode == 60, curl  # CURLE_PEER_FAILED_VERIFICATION: the host name

    stop = re.search(r"stop it with `eblocks (down --state-dir \S+)`$", run.stdout, re.MULTILINE)
    assert stop, run.stdout
    assert shlex.split(stop[1]) == ["down", "--state-dir", str(sandbox.state_root)]
    down = sandbox.eblocks(*shlex.split(stop[1]))
    assert down.returncode == 0, str(down)
    assert sandbox.processes() == []


def test_the_demo_leaves_a_kept_mesh_alone_and_says_how_to_stop_it(
    sandbox: Sandbox, keys: Path
) -> None:
    """A mesh still up from ``demo --keep``: the demo refuses in one line and, as
    `RunningMesh.up` when ``eblocks up`` itself refuses, stops nothing."""
    from docproc.meshrun import MeshAlreadyRunning, RunningMesh

    env = _env(sandbox, keys)
    up = sandbox.up(DOCPROC / "mesh.yaml", env=env)
    assert up.returncode == 0, str(up)
    supervisor = psutil.Process(sandbox.supervisor_info("docproc")["pid"])
    instances = [psutil.Process(row["pid"]) for row in sandbox.instances("docproc")]

    run = sandbox.eblocks("docproc", "demo", "--count", "5", "--workdir", str(sandbox.root))

    assert run.returncode == 1, str(run)
    assert "Traceback" not in run.output, str(run)
    assert run.stdout == "", str(run)
    assert run.stderr == (
        f"error: mesh 'docproc' is already running under {sandbox.state_root} (supervisor pid "
        f"{supervisor.pid}); stop it with `eblocks down --state-dir {sandbox.state_root}`\n"
    ), str(run)

    class Racing(RunningMesh):
        """Skips the check, as if another `up` started the mesh just after it."""

        def refuse_if_running(self) -> None:
            pass

    with pytest.raises(MeshAlreadyRunning):
        Racing(DOCPROC / "mesh.yaml", sandbox.state_root, {**sandbox.env, **env}).up()

    assert alive(supervisor)
    assert all(alive(proc) for proc in instances)
    assert sandbox.supervisor_info("docproc")["status"] == "ready"
