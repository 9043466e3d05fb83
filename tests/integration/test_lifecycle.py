"""`eblocks up | status | down` on this machine: starting, failing to start, stopping."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from eblocks.runtime.state import read_json

from .helpers import Run, Sandbox, alive, parse_table, wait_for

pytestmark = pytest.mark.integration

ECHO = '''\
"""A handler that answers with what it got."""

from eblocks import Message


def echo(msg: Message) -> bytes:
    return msg.body
'''


def _mesh_processes(sandbox: Sandbox, mesh: str) -> list[psutil.Process]:
    """The supervisor and every instance, as recorded in the state dir (all alive)."""
    pids = [sandbox.supervisor_info(mesh)["pid"]] + [r["pid"] for r in sandbox.instances(mesh)]
    procs = [psutil.Process(pid) for pid in pids]
    for proc in procs:
        assert alive(proc), proc
        assert str(sandbox.root) in " ".join(proc.cmdline()), proc.cmdline()
    return procs


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


def test_status_shows_every_instance(sandbox: Sandbox) -> None:
    up = sandbox.up(sandbox.copy_textpipe())
    assert up.returncode == 0, str(up)

    run = sandbox.cmd("status")

    assert run.returncode == 0, str(run)
    rows = parse_table(run.stdout)
    end = next(i for i, row in enumerate(rows) if row[0] == "pattern")  # the patterns table
    header, body, patterns = rows[0], rows[1:end], rows[end + 1 :]
    assert patterns == [
        ["ingest", "pipeline", "filter: clean -> tokenize -> count", "-", "-", "-", "-", "-"]
    ], str(run)
    wanted = ["block", "instance", "pid", "address", "admin", "ready", "restarts"]
    assert [c for c in header if c in wanted] == wanted, str(run)
    table = [dict(zip(header, cells, strict=True)) for cells in body]
    recorded = sandbox.instances("textpipe")
    assert [r["instance"] for r in table] == [r["instance"] for r in recorded], str(run)
    assert sorted(r["instance"] for r in table) == [
        "clean-0",
        "count-0",
        "tokenize-0",
        "tokenize-1",
    ]
    for shown, state in zip(table, recorded, strict=True):
        assert shown["block"] == state["block"] == shown["instance"].rsplit("-", 1)[0]
        assert shown["pid"] == str(state["pid"]), str(run)
        assert shown["admin"] == str(state["admin_port"]), str(run)  # where /metrics is
        assert shown["ready"] == "yes", str(run)
        assert shown["restarts"] == "0", str(run)
        # the row tells the truth: that pid runs that instance, serving on that address
        cmdline = psutil.Process(int(shown["pid"])).cmdline()
        assert cmdline[cmdline.index("--instance") + 1] == shown["instance"]
        host, _, port = shown["address"].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=2.0):
            pass


def test_down_leaves_no_process_behind(sandbox: Sandbox) -> None:
    spec = sandbox.copy_textpipe()
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    again = sandbox.up(spec)  # refused, naming how to stop this mesh (its own state dir)
    assert again.returncode == 1, str(again)
    assert f"stop it with `eblocks down --state-dir {sandbox.state_root}`" in again.stderr
    procs = _mesh_processes(sandbox, "textpipe")
    assert len(procs) == 5  # the supervisor and four instances
    ports = [(r["host"], r["port"]) for r in sandbox.instances("textpipe")]
    ports += [(r["host"], r["admin_port"]) for r in sandbox.instances("textpipe")]

    run = sandbox.cmd("down")

    assert run.returncode == 0, str(run)
    assert "stopped" in run.stdout, str(run)
    assert "killed" not in run.stdout, str(run)  # every instance drained and exited by itself
    assert [p.pid for p in procs if alive(p)] == [], str(run)
    assert sandbox.processes() == []
    assert all(_refused(host, port) for host, port in ports)
    assert sandbox.supervisor_info("textpipe")["status"] == "stopped"

    call = sandbox.cmd("call", "ingest", "--data", "too late")
    assert call.returncode == 1, str(call)
    assert "mesh 'textpipe' is not running" in call.stderr, str(call)


def _spec(mesh: str, blocks: str, defaults: str = "ready_timeout: 60s") -> str:
    return f"apiVersion: eblocks/v1\nmesh: {mesh}\ndefaults: {{{defaults}}}\nblocks:\n{blocks}"


def _assert_failed_without_restarts(sandbox: Sandbox, mesh: str, block: str, run: Run) -> None:
    """A configuration error is final: the supervisor gives up at once, restarting nothing.

    (Not a wall-clock bound: ``ready_timeout`` is 60 s, and a supervisor that
    waited for it or restarted the instance would show it here.)
    """
    info = sandbox.supervisor_info(mesh)
    assert info.get("status") in {"failed", "stopped"}, info  # it gave up, then stopped
    assert f"block {block!r}" in info.get("error", ""), info
    rows = sandbox.instances(mesh)
    assert rows, str(run)
    assert all(row["restarts"] == 0 for row in rows), rows


def test_up_fails_fast_when_a_handler_cannot_be_imported(sandbox: Sandbox) -> None:
    sandbox.write("echo.py", ECHO)
    spec = sandbox.write(
        "mesh.yaml",
        _spec(
            "broken",
            "  fine:\n    handler: echo:echo\n"
            "  parser:\n    handler: nosuchmodule:fn\n"
            "  after:\n    handler: echo:echo\n",
        ),
    )

    run = sandbox.up(spec)

    assert run.returncode != 0, str(run)
    _assert_failed_without_restarts(sandbox, "broken", "parser", run)
    message = " ".join(run.stderr.split())
    assert "'parser'" in message, str(run)
    assert "nosuchmodule" in message, str(run)
    assert "ModuleNotFoundError" in message, str(run)
    assert "Traceback" not in run.output, str(run)
    assert sandbox.processes() == [], str(run)
    status = sandbox.cmd("status", "--mesh", "broken")
    (error,) = [line for line in status.stdout.splitlines() if line.startswith("parser-0: ")]
    assert "nosuchmodule" in error, str(status)  # whole, on its own line, not cut in a cell


def test_an_exporter_that_is_not_installed_is_named_by_validate_and_stops_up_at_once(
    sandbox: Sandbox,
) -> None:
    """The OTLP exporter is an extra (``eblocks[otlp]``), not installed in the test venv."""
    sandbox.write("echo.py", ECHO)
    tracing = "telemetry:\n  tracing: {exporter: otlp, endpoint: 'http://127.0.0.1:9/v1/traces'}\n"
    spec = sandbox.write("mesh.yaml", _spec("traced", "  one:\n    handler: echo:echo\n") + tracing)
    check = sandbox.eblocks("validate", str(spec))
    assert check.returncode == 0, str(check)
    assert "pip install 'eblocks[otlp]'" in " ".join(check.stderr.split()), str(check)

    run = sandbox.up(spec)

    assert run.returncode != 0, str(run)
    info = sandbox.supervisor_info("traced")
    assert info.get("status") in {"failed", "stopped"}, info  # gave up at once (ready_timeout: 60s)
    assert info.get("error", "").startswith("one-0: telemetry.tracing.exporter 'otlp'"), info
    assert all(row["restarts"] == 0 for row in sandbox.instances("traced"))
    message = " ".join(run.stderr.split())
    assert "pip install 'eblocks[otlp]'" in message, str(run)
    assert "Traceback" not in run.output, str(run)
    assert sandbox.processes() == [], str(run)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_up_fails_when_a_fixed_port_is_in_use(sandbox: Sandbox, busy_port: int) -> None:
    sandbox.write("echo.py", ECHO)
    spec = sandbox.write(
        "mesh.yaml",
        _spec(
            "ported",
            f"  front:\n    handler: echo:echo\n    port: {busy_port}\n"
            "  back:\n    handler: echo:echo\n",
        ),
    )

    run = sandbox.up(spec)

    assert run.returncode != 0, str(run)
    _assert_failed_without_restarts(sandbox, "ported", "front", run)
    message = " ".join(run.stderr.split())
    assert "'front'" in message, str(run)
    assert str(busy_port) in message, str(run)
    assert "in use" in message, str(run)
    assert sandbox.processes() == [], str(run)


def test_foreground_up_stops_cleanly_on_sigint(sandbox: Sandbox) -> None:
    proc = sandbox.start("up", str(sandbox.copy_textpipe()))

    def ready() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(f"`eblocks up` exited early: {sandbox.output_of(proc)}")
        info = sandbox.supervisor_info("textpipe")
        return info if info.get("status") == "ready" else None

    info = wait_for(ready, timeout=60, what="the mesh to be ready")
    assert info["pid"] == proc.pid  # the foreground command is the supervisor
    status = sandbox.cmd("status")
    assert status.returncode == 0, str(status)
    rows = parse_table(status.stdout)
    end = next(i for i, row in enumerate(rows) if row[0] == "pattern")  # the patterns table
    column = rows[0].index("ready")
    readiness = [row[column] for row in rows[1:end]]
    assert readiness == ["yes"] * 4, str(status)
    procs = _mesh_processes(sandbox, "textpipe")

    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)

    out, err = sandbox.output_of(proc)
    assert code == 0, f"exit {code} after {time.monotonic() - began:.1f}s\n{out}\n{err}"
    assert "Traceback" not in out + err
    assert "stopped" in out
    assert [p.pid for p in procs if alive(p)] == []
    assert sandbox.processes() == []


def test_a_crashed_instance_is_unpublished_while_its_restart_waits(sandbox: Sandbox) -> None:
    """kill -9 of one of two replicas: from the moment the supervisor marks it down, no
    caller is sent to its dead port (a third of calls failed with a refused connection)."""
    up = sandbox.up(sandbox.copy_textpipe())
    assert up.returncode == 0, str(up)
    victim = next(r for r in sandbox.instances("textpipe") if r["instance"] == "tokenize-1")
    os.kill(victim["pid"], signal.SIGKILL)

    def down() -> dict[str, Any] | None:
        row = next(r for r in sandbox.instances("textpipe") if r["instance"] == "tokenize-1")
        return row if row["pid"] != victim["pid"] or row["state"] != "ready" else None

    wait_for(down, timeout=30, what="the supervisor to see tokenize-1 exit")
    published = read_json(sandbox.mesh_dir("textpipe") / "endpoints.json") or {}
    ports = [e["port"] for e in published["blocks"]["tokenize"]]
    assert victim["port"] not in ports, published  # state.json is written after endpoints


def test_up_detached_says_why_the_supervisor_could_not_prepare(sandbox: Sandbox) -> None:
    """A failure before any instance is launched (a gossip key file that is not there): the
    reason, not "see supervisor.log"."""
    sandbox.write("echo.py", ECHO)
    spec = sandbox.write(
        "mesh.yaml",
        _spec("nokey", "  one:\n    handler: echo:echo\n")
        + "discovery: {mode: gossip, key_file: nokey.key}\n",
    )
    run = sandbox.up(spec)
    assert run.returncode != 0, str(run)
    message = " ".join(run.stderr.split())
    assert "discovery.key_file" in message, str(run)
    assert "nokey.key" in message, str(run)
    assert sandbox.processes() == [], str(run)


SLOW = '''\
"""A handler that takes its time."""

import time


def slow(msg):
    time.sleep(20)
    return msg.body
'''


def test_down_that_must_kill_says_so_and_exits_1(sandbox: Sandbox) -> None:
    """Work cut short is no clean stop: `down` names it and fails (it exited 0)."""
    sandbox.write("slow.py", SLOW)
    spec = sandbox.write("mesh.yaml", _spec("slowly", "  one:\n    handler: slow:slow\n"))
    up = sandbox.up(spec)
    assert up.returncode == 0, str(up)
    call = sandbox.start("call", "one", "--data", "x", "--mesh", "slowly")
    try:
        (row,) = sandbox.instances("slowly")
        wait_for(
            lambda: (
                b"eblocks_requests_in_flight" in sandbox.admin_ok("slowly", row, "/metrics")
                and _in_flight(sandbox.admin_ok("slowly", row, "/metrics")) > 0
            ),
            timeout=30,
            what="the slow call to be in flight",
        )
        down = sandbox.cmd("down", "--mesh", "slowly", "--timeout", "1")
    finally:
        call.kill()
        call.wait(timeout=10)
    assert down.returncode == 1, str(down)
    assert "stopped by force" in " ".join(down.stderr.split()), str(down)
    assert sandbox.processes() == [], str(down)


def _in_flight(metrics: bytes) -> float:
    gauge = "eblocks_requests_in_flight{"
    lines = metrics.decode().splitlines()
    inbound = [x for x in lines if x.startswith(gauge) and 'direction="inbound"' in x]
    return sum(float(line.rsplit(" ", 1)[1]) for line in inbound)


RELAY = '''\
"""A block that works a while, then calls another."""

import asyncio


async def front(msg, ctx):
    await asyncio.sleep(1.5)
    reply = await ctx.call("back", msg)
    return b"front+" + reply.body


def back(msg):
    return b"back:" + msg.body
'''


def test_down_lets_requests_in_flight_finish_their_calls_to_other_blocks(
    sandbox: Sandbox,
) -> None:
    """Every instance got SIGTERM at once: `back` drained (nothing in flight) and exited
    while `front`'s requests still had to call it, and they failed."""
    sandbox.write("relay.py", RELAY)
    blocks = "  front:\n    handler: relay:front\n  back:\n    handler: relay:back\n"
    up = sandbox.up(sandbox.write("mesh.yaml", _spec("relay", blocks)))
    assert up.returncode == 0, str(up)
    calls = [sandbox.start("call", "front", "--data", f"d{n}", "--mesh", "relay") for n in range(3)]
    front = next(r for r in sandbox.instances("relay") if r["block"] == "front")
    wait_for(
        lambda: _in_flight(sandbox.admin_ok("relay", front, "/metrics")) >= 3,
        timeout=30,
        what="three calls in flight at front",
    )
    down = sandbox.cmd("down", "--mesh", "relay")
    assert down.returncode == 0, str(down)
    for n, call in enumerate(calls):
        assert call.wait(timeout=30) == 0, sandbox.output_of(call)
        assert sandbox.output_of(call)[0].strip() == f"front+back:d{n}"


def test_a_corrupt_state_file_is_one_line_not_a_traceback(sandbox: Sandbox) -> None:
    folder = sandbox.state_root / "broken"
    folder.mkdir(parents=True)
    (folder / "supervisor.json").write_text("{broken")
    down = sandbox.cmd("down", "--mesh", "broken")
    assert down.returncode == 1, str(down)
    assert "Traceback" not in down.output, str(down)
    assert "supervisor.json: corrupt state file" in " ".join(down.stderr.split()), str(down)
    status = sandbox.cmd("status", "--mesh", "broken")  # a supervisor it cannot read: not running
    assert "Traceback" not in status.output, str(status)
    assert "supervisor not running" in status.stdout, str(status)
