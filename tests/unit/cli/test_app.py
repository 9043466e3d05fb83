"""The `eblocks` command itself."""

from __future__ import annotations

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
