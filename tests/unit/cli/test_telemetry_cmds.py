"""`eblocks stat | top | tap | dashboard` on a state dir: what they say before asking anybody."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eblocks.cli import app, telemetry_cmds
from eblocks.cli.telemetry_cmds import route_warning
from eblocks.runtime.state import StateDir, write_json
from eblocks.telemetry import Telemetry

SPEC = """\
apiVersion: eblocks/v1
mesh: quiet
blocks:
  clean: {handler: "h:clean"}
  tokenize: {handler: "h:tokenize"}
  shop: {app: "h:shop"}
patterns:
  ingest:
    pipeline: [clean, tokenize]
security: {mtls: disable}
"""
OFF = "telemetry.metrics: false: instances count no requests"


def _state(tmp_path: Path, *, metrics: bool = True, running: bool = True) -> list[str]:
    """A mesh `quiet` under tmp_path (its instances: this process); the CLI's state options."""
    state = StateDir(tmp_path / "quiet")
    state.create()
    state.spec.write_text(SPEC + ("" if metrics else "telemetry: {metrics: false}\n"))
    write_json(state.supervisor, {"pid": os.getpid(), "status": "ready"})
    rows = [
        {
            "block": block,
            "instance": f"{block}-0",
            "pid": os.getpid(),
            "host": "127.0.0.1",
            "port": 1,
            "admin_port": 1,  # nothing answers there: the commands under test must not ask
            "ready": True,
        }
        for block in ("clean", "tokenize", "shop")
    ]
    write_json(state.state, {"mesh": "quiet", "instances": rows if running else []})
    return ["--mesh", "quiet", "--state-dir", str(tmp_path)]


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every instance answers /v1/stats as one that counts nothing would."""

    async def fetch(
        rows: Sequence[dict[str, Any]], _: Any
    ) -> tuple[list[dict[str, Any]], list[str]]:
        made = [Telemetry(r["block"], r["instance"], requests=False) for r in rows]
        return [t.stats() for t in made], []

    monkeypatch.setattr(telemetry_cmds, "fetch_stats", fetch)


def _lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


@pytest.mark.usefixtures("answers")
def test_stat_and_top_say_the_mesh_counts_no_requests(tmp_path: Path) -> None:
    options = _state(tmp_path, metrics=False)
    for args in (["stat"], ["stat", "clean", "--json"], ["top", "--iterations", "1"]):
        result = CliRunner().invoke(app, [*args, *options])
        assert result.exit_code == 0, result.output
        said = _lines_with(result.stderr, OFF)
        assert len(said) == 1, result.stderr  # once, on one line, on stderr
        assert "mesh 'quiet'" in said[0]
        assert OFF not in result.stdout


@pytest.mark.usefixtures("answers")
def test_stat_says_nothing_of_the_kind_when_the_mesh_counts(tmp_path: Path) -> None:
    options = _state(tmp_path)
    result = CliRunner().invoke(app, ["stat", *options])
    assert result.exit_code == 0, result.output
    assert "telemetry.metrics" not in result.output


def test_tap_of_a_mesh_that_counts_no_requests_fails_at_once(tmp_path: Path) -> None:
    options = _state(tmp_path, metrics=False)
    result = CliRunner().invoke(app, ["tap", "clean", "--seconds", "30", *options])
    assert result.exit_code == 1, result.output
    assert len(_lines_with(result.stderr, OFF)) == 1
    assert "request(s)" not in result.output


def test_tap_of_a_pattern_names_the_way_to_tap_it(tmp_path: Path) -> None:
    options = _state(tmp_path)
    result = CliRunner().invoke(app, ["tap", "ingest", *options])
    assert result.exit_code == 1
    assert "no running instance of block 'ingest'" in result.stderr
    assert "('ingest' is a pattern: tap one of its blocks with --route ingest)" in result.stderr
    result = CliRunner().invoke(app, ["tap", "nosuch", *options])
    assert result.exit_code == 1
    assert "no running instance of block 'nosuch'" in result.stderr
    assert "is a pattern" not in result.stderr


@pytest.mark.parametrize(
    ("route", "warned"),
    [
        ("nosuch", True),
        ("ingest", False),
        ("direct", False),
        ("GET /items/{id}", False),  # an application block's: not checked
    ],
)
def test_tap_warns_at_start_of_a_route_the_mesh_cannot_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: str, warned: bool
) -> None:
    asked: list[dict[str, str]] = []

    async def tap(_: Any, __: Any, query: dict[str, str], *rest: Any) -> int:
        asked.append(query)
        return 0

    monkeypatch.setattr(telemetry_cmds, "_tap", tap)
    options = _state(tmp_path)
    result = CliRunner().invoke(app, ["tap", "clean", "--route", route, *options])
    assert result.exit_code == 0, result.output
    assert asked == [{"limit": "100", "seconds": "60.0", "route": route, "direction": "inbound"}]
    lines = _lines_with(result.stderr, f"route {route!r}")
    if warned:
        assert len(lines) == 1, result.stderr
        assert "ingest" in lines[0]  # the routes it can have
        assert result.stderr.index(lines[0]) < result.stderr.index("0 request(s)")
    else:
        assert not lines, result.stderr


def test_a_dashboard_of_a_stopped_mesh_warns_and_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[int] = []

    async def serve(_: Any, __: str, port: int) -> None:
        served.append(port)

    monkeypatch.setattr(telemetry_cmds, "_serve_dashboard", serve)
    options = _state(tmp_path, running=False)
    result = CliRunner().invoke(app, ["dashboard", *options])
    assert result.exit_code == 0, result.output
    assert served == [0]  # served all the same: the mesh may be started later
    said = _lines_with(result.stderr, "no running instance")
    assert len(said) == 1, result.stderr
    assert "mesh 'quiet'" in said[0]
    options = _state(tmp_path)
    result = CliRunner().invoke(app, ["dashboard", *options])
    assert result.exit_code == 0, result.output
    assert "no running instance" not in result.stderr


def test_the_routes_a_mesh_can_have() -> None:
    from eblocks.spec import parse_spec

    spec = parse_spec(SPEC, "quiet.yaml")
    assert route_warning(spec, "ingest") is None
    assert route_warning(spec, "direct") is None
    assert route_warning(spec, "POST /orders") is None
    said = route_warning(spec, "tcp")
    assert said is not None
    assert "'tcp'" in said
    assert "(ingest)" in said
    assert "'direct'" in said
    sidecar = SPEC.replace(
        '  shop: {app: "h:shop"}\n',
        "  db: {external: {command: [db], port: 5432, protocol: tcp}}\n",
    )
    assert sidecar != SPEC
    assert route_warning(parse_spec(sidecar, "quiet.yaml"), "tcp") is None
