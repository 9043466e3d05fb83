"""`eblocks validate` and `eblocks schema`, run as a user runs them."""

from __future__ import annotations

import json
import re

import pytest

from .helpers import TEXTPIPE, Sandbox

pytestmark = pytest.mark.integration

# Five kinds of problem; the line of each is found from its marker comment.
BROKEN = """\
apiVersion: eblocks/v1
mesh: broken
defaults:
  replicas: many                      # WRONG-TYPE
blocks:
  clean:
    handler: handlers:clean
    colour: blue                      # UNKNOWN-FIELD
  count:
    handler: handlers:count
  count:                              # DUPLICATE
    handler: handlers:count
patterns:
  ingest:
    pipeline: [clean, nosuch, count]  # UNKNOWN-BLOCK
  loop-a:
    pipeline: [clean, loop-b]         # CYCLE-A
  loop-b:
    pipeline: [loop-a]                # CYCLE-B
"""


def _line_of(marker: str) -> int:
    return next(n for n, line in enumerate(BROKEN.splitlines(), 1) if marker in line)


def _col_of(marker: str, needle: str) -> int:
    return BROKEN.splitlines()[_line_of(marker) - 1].index(needle) + 1


def test_validate_accepts_the_example(sandbox: Sandbox) -> None:
    run = sandbox.eblocks("validate", str(TEXTPIPE / "mesh.yaml"))
    assert run.returncode == 0, str(run)
    assert "valid" in run.stdout, str(run)
    assert run.stderr == "", str(run)


def test_validate_warns_of_a_handler_module_up_could_not_load(sandbox: Sandbox) -> None:
    """Found without importing anything: in the spec's folder (as `up` runs it) or installed."""
    sandbox.write("shop/handlers.py", "raise SystemExit('never imported by validate')\n")
    sandbox.write(
        "shop/mesh.yaml",
        "apiVersion: eblocks/v1\nmesh: shop\nblocks:\n"
        "  ingest: {handler: handlers:ingest}\n"
        "  report: {handler: reprot:report}\n"
        "  stats: {handler: eblocks.bench.servers:echo}\n",
    )
    run = sandbox.eblocks("validate", "shop/mesh.yaml")
    assert run.returncode == 0, str(run)  # the spec itself is valid
    assert "valid" in run.stdout, str(run)
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, str(run)
    assert "blocks.report.handler: no module 'reprot'" in warnings[0]
    assert "`eblocks up` cannot load 'reprot:report'" in warnings[0]


def test_validate_lists_every_problem_with_its_position(sandbox: Sandbox) -> None:
    sandbox.write("broken.yaml", BROKEN)
    run = sandbox.eblocks("validate", "broken.yaml")
    assert run.returncode == 2, str(run)
    issues = [line.strip() for line in run.stderr.splitlines() if line.startswith("  ")]
    assert re.search(r"\b6 problems\b", run.stderr), str(run)

    def issue(line: int, *words: str, col: int | None = None) -> str:
        prefix = f"broken.yaml:{line}:{col if col is not None else ''}"
        found = [
            i
            for i in issues
            if i.startswith(prefix) and re.match(r"broken\.yaml:\d+:\d+: ", i)
            if all(w in i for w in words)
        ]
        assert len(found) == 1, f"expected one issue at {prefix} naming {words}:\n{run}"
        return found[0]

    # the wrong value itself; the unknown key itself
    issue(_line_of("WRONG-TYPE"), "defaults.replicas", "many", col=_col_of("WRONG-TYPE", "many"))
    issue(
        _line_of("UNKNOWN-FIELD"),
        "blocks.clean",
        "colour",
        "unknown field",
        col=_col_of("UNKNOWN-FIELD", "colour"),
    )
    issue(
        _line_of("DUPLICATE"),
        "blocks.count",
        "duplicate",
        f"line {_line_of('DUPLICATE') - 2}",
        col=_col_of("DUPLICATE", "count"),
    )
    issue(
        _line_of("UNKNOWN-BLOCK"),
        "patterns.ingest.pipeline[1]",
        "'nosuch'",
        col=_col_of("UNKNOWN-BLOCK", "nosuch"),
    )
    issue(
        _line_of("CYCLE-A"),
        "patterns.loop-a.pipeline[1]",
        "cycle",
        "loop-a -> loop-b -> loop-a",
        col=_col_of("CYCLE-A", "loop-b"),
    )
    issue(
        _line_of("CYCLE-B"),
        "patterns.loop-b.pipeline[0]",
        "cycle",
        col=_col_of("CYCLE-B", "loop-a"),
    )
    assert len(issues) == 6, str(run)
    assert "Traceback" not in run.output, str(run)


def test_schema_prints_json_schema(sandbox: Sandbox) -> None:
    run = sandbox.eblocks("schema")
    assert run.returncode == 0, str(run)
    schema = json.loads(run.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert {"apiVersion", "mesh", "blocks", "patterns"} <= set(schema["properties"])
    assert {"apiVersion", "mesh", "blocks"} <= set(schema["required"])
