"""`eblocks diff` / `eblocks apply` against fake members: HTTP servers on loopback.

A fake state dir says three instances run (this process's pid, so they count
as alive); two answer GET/POST /v1/policies from one shared bundle (a POST to
one is seen by both, as the state-dir file carries it), the third is a socket
that accepts connections and never answers — what a stopped (SIGSTOP) process
looks like to a client.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from eblocks.cli.app import app
from eblocks.policies import PolicyState
from eblocks.policies.bundle import Bundle, bootstrap, parse_bundle
from eblocks.policies.keys import ensure_signing_key, new_run
from eblocks.spec import parse_spec

RUNNING = """\
apiVersion: eblocks/v1
mesh: fake
security: {mtls: disable}
blocks:
  front: {handler: "m:f"}
  store: {handler: "m:s", replicas: 2}
patterns:
  reports: {pipeline: [store]}
policies:
  routes:
    - name: canary
      to: store
      destinations: [{block: store}]
"""


@dataclass
class Fleet:
    """The bundle the answering members share, and what was POSTed to them."""

    bundle: Bundle
    posts: list[int] = field(default_factory=list)


def _handler(fleet: Fleet) -> type[http.server.BaseHTTPRequestHandler]:
    class Member(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(200, fleet.bundle.dumps())

        def do_POST(self) -> None:
            bundle = parse_bundle(self.rfile.read(int(self.headers["content-length"])))
            fleet.posts.append(bundle.version)
            fleet.bundle = bundle
            self._answer(200, orjson.dumps({"version": bundle.version, "digest": bundle.digest}))

    return Member


@dataclass
class Mesh:
    root: Path
    fleet: Fleet

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, *args: str) -> tuple[int, str, str, float]:
        """``eblocks <args> --state-dir <root>``: exit code, stdout, stderr, seconds taken."""
        started = time.monotonic()
        result = CliRunner().invoke(app, [*args, "--state-dir", str(self.root)])
        return result.exit_code, result.stdout, result.stderr, time.monotonic() - started


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    state = tmp_path / "fake"
    state.mkdir()
    (state / "spec.yaml").write_text(RUNNING, encoding="utf-8")
    (state / "supervisor.json").write_text("{}", encoding="utf-8")
    ensure_signing_key(state)
    run = new_run(state)
    spec = parse_spec(RUNNING, "spec.yaml")
    fleet = Fleet(bootstrap(spec.mesh, run, PolicyState.of(spec.policies)))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(fleet)) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # connections complete in the kernel; nobody ever reads them
    ports = {
        "store-1": hung.getsockname()[1],  # first: asked first when members are asked in turn
        "front-0": servers[0].server_address[1],
        "store-0": servers[1].server_address[1],
    }
    rows = [
        {
            "instance": name,
            "block": name.partition("-")[0],
            "host": "127.0.0.1",
            "admin_port": port,
            "pid": os.getpid(),
            "ready": True,
        }
        for name, port in ports.items()
    ]
    (state / "state.json").write_bytes(orjson.dumps({"instances": rows}))
    try:
        yield Mesh(tmp_path, fleet)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        hung.close()


def test_apply_timeout_bounds_the_whole_command_with_a_member_that_never_answers(
    mesh: Mesh,
) -> None:
    changed = mesh.write("changed.yaml", RUNNING.replace("[{block: store}]", "[{block: front}]"))
    code, out, err, took = mesh.run("apply", str(changed), "--timeout", "3")
    # every member asked at once, each request within the time left: 2 s per hung
    # member and step (GET, POST, every poll) was 11 s for a 5 s --timeout
    assert took < 3 + 1.0, (took, out, err)
    assert mesh.fleet.posts == [1]  # delivered to a member that answers, once
    assert "applied policies v1" in out
    assert "2/3 instances at v1" in out
    assert code == 1  # not every instance reports it
    assert "store-1 (no answer)" in err  # named in the result
    assert "store-1 did not answer GET /v1/policies: no answer within 2s" in err


def test_apply_names_a_block_the_running_mesh_lacks_with_line_and_column(mesh: Mesh) -> None:
    text = RUNNING.replace("  store: {handler", "  store-v4: {handler: m:s4}\n  store: {handler")
    text = text.replace("[{block: store}]", "[{block: store-v4}]")
    newblk = mesh.write("newblk.yaml", text)
    code, out, err, _ = mesh.run("apply", str(newblk), "--timeout", "3")
    assert code == 2, (out, err)
    # where `eblocks validate` puts the same error, given a spec without block store-v4
    want = f"{newblk}:14:30: policies.routes[0].destinations[0].block: unknown block 'store-v4'"
    assert want + " (expected one of: front, store)" in err.splitlines(), err
    assert mesh.fleet.posts == []
    # the new block itself is one line, not one per field
    assert "needs a restart (not applied): blocks.store-v4 (added)" in out.splitlines()


def test_diff_and_apply_warn_of_a_route_that_is_never_reached(mesh: Mesh) -> None:
    text = RUNNING + "    - {name: beta, to: store, match: [{headers: {x-t: {exact: b}}}]}\n"
    shadowed = mesh.write("shadowed.yaml", text)
    want = (
        f"warning: {shadowed}:14:7: policies.routes[1]: 'beta' is never reached: "
        "routes[0] 'canary' matches every call to 'store'"
    )
    for command in (["diff"], ["apply", "--timeout", "1"]):
        code, out, err, _ = mesh.run(*command, str(shadowed))
        assert want in err.splitlines(), (command, out, err)
        assert "+ route beta" in out
    assert code == 1  # apply: the hung member never reports v1
    assert mesh.fleet.posts == [1]


def test_diff_prints_the_specs_warnings_and_a_route_warning_once(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eblocks.spec.loader
    from eblocks.policies.lint import unreachable_routes
    from eblocks.spec.check import check_warnings

    text = RUNNING + "    - {name: beta, to: store, match: [{headers: {x-t: {exact: b}}}]}\n"
    text += "  blocks:\n    store:\n      outlier: {success_rate_min_hosts: 3}\n"
    shadowed = mesh.write("shadowed.yaml", text)
    _, _, plain, _ = mesh.run("diff", str(shadowed))

    def with_routes(spec: Any) -> Any:  # spec validation once it warns of them too
        yield from check_warnings(spec)
        yield from unreachable_routes(spec.policies)

    monkeypatch.setattr(eblocks.spec.loader, "check_warnings", with_routes)
    _, _, wired, _ = mesh.run("diff", str(shadowed))
    for err in (plain, wired):
        lines = [line for line in err.splitlines() if line.startswith("warning: ")]
        assert [line.split(": ")[1] for line in lines[:2]] == [
            f"{shadowed}:14:7",
            f"{shadowed}:17:41",
        ], err
        assert "'beta' is never reached" in lines[0]
        assert sum("never reached" in line for line in lines) == 1, err
        assert "success-rate ejection can never fire" in lines[1]
