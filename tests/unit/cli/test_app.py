"""The `eblocks` command itself."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from eblocks import __version__
from eblocks.batch import BatchReport, Failure
from eblocks.cli import app
from eblocks.cli.client_cmds import _print_report
from eblocks.cli.common import console


def test_version_is_printed_and_nothing_else_runs() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"eblocks {__version__}\n"


def test_a_submit_where_no_document_went_through_shows_no_latency() -> None:
    report = BatchReport(failures=[Failure("a.txt", "timeout", "clean", "too slow")])
    with console.capture() as captured:
        _print_report(report)
    text = captured.get()
    assert "latency p50" in text
    assert "- (none ok)" in text
    assert "0.0 ms" not in text
    report = BatchReport(ok=2, latencies=[0.010, 0.030])
    with console.capture() as captured:
        _print_report(report)
    assert "latency p50" in captured.get()
    assert "(none ok)" not in captured.get()


def test_a_join_tokens_ttl_is_a_duration_as_in_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "mesh.yaml"
    spec.write_text("apiVersion: eblocks/v1\nmesh: m\nblocks:\n  w: {handler: h:w}\n")
    state = ["--state-dir", str(tmp_path / "state")]
    assert CliRunner().invoke(app, ["ca", "init", str(spec), *state]).exit_code == 0
    for ttl in ("1h", "8760h", "3600", "90s"):
        made = CliRunner().invoke(
            app, ["ca", "token", str(spec), "--block", "w", "--ttl", ttl, *state]
        )
        assert made.exit_code == 0, made.output
        assert made.output.startswith("eb1.")
    for ttl, says in (("soon", "expected a duration"), ("0", "more than 0")):
        refused = CliRunner().invoke(
            app, ["ca", "token", str(spec), "--block", "w", "--ttl", ttl, *state]
        )
        assert refused.exit_code == 2
        assert says in refused.output


def test_a_simulation_refused_for_every_size_fails_and_keeps_the_last_results(
    tmp_path: Path,
) -> None:
    (tmp_path / "discovery.json").write_text("{}", encoding="utf-8")  # a previous run's
    result = CliRunner().invoke(
        app, ["bench", "discovery", "--simulate", "40000", "--out", str(tmp_path)]
    )  # every node holds a full view: ~96 GB, refused on any machine the tests run on
    assert result.exit_code == 1
    assert "nothing written" in result.output
    assert (tmp_path / "discovery.json").read_text(encoding="utf-8") == "{}"
