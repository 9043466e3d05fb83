"""The `eblocks` command itself."""

from __future__ import annotations

from typer.testing import CliRunner

from eblocks import __version__
from eblocks.cli import app


def test_version_is_printed_and_nothing_else_runs() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"eblocks {__version__}\n"
