"""`parse_spec` / `load_spec`: a valid spec loads; each mistake names file:line:col and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from eblocks.errors import SpecError, SpecIssue
from eblocks.spec import MeshSpec, PipelineSpec, load_spec, parse_spec
from eblocks.spec.loader import format_path

from .issues import HEAD, issues_of, only_issue

TEXTPIPE = Path(__file__).resolve().parents[3] / "examples" / "textpipe" / "mesh.yaml"


def test_textpipe_example_loads() -> None:
    spec = load_spec(TEXTPIPE)
    assert isinstance(spec, MeshSpec)
    assert spec.mesh == "textpipe"
    assert list(spec.blocks) == ["clean", "tokenize", "count"]
    assert spec.blocks["clean"].handler == "handlers:clean"
    ingest = spec.patterns["ingest"]
    assert isinstance(ingest, PipelineSpec)
    assert ingest.stages == ("clean", "tokenize", "count")
    assert spec.defaults.timeout == 10.0
    assert spec.defaults.retries.attempts == 3
    assert spec.defaults.retries.backoff == pytest.approx(0.05)


def test_block_settings_inherit_defaults() -> None:
    spec = load_spec(TEXTPIPE)
    tokenize, clean = spec.settings("tokenize"), spec.settings("clean")
    assert (tokenize.replicas, clean.replicas) == (2, 1)
    assert tokenize.timeout == clean.timeout == 10.0
    assert clean.retries.attempts == 3
    assert clean.port is None


def test_spec_models_are_frozen() -> None:
    spec = load_spec(TEXTPIPE)
    with pytest.raises(ValueError, match="frozen"):
        spec.mesh = "other"  # type: ignore[misc]


def test_invalid_yaml_names_line_and_column() -> None:
    issue = only_issue(HEAD + "blocks:\n  a: b: c\n")
    assert (issue.file, issue.line, issue.column) == ("mesh.yaml", 4, 7)
    assert issue.path == ""
    assert issue.message.startswith("invalid YAML: mapping values are not allowed")


def test_invalid_yaml_names_the_construct_it_broke_and_where_that_starts() -> None:
    # a block item in a flow list: PyYAML notices at the `-`; the list starts a line above
    text = HEAD + 'blocks:\n  a:\n    handler: h:a\n    labels: ["x", "y"\n      - z]\n'
    issue = only_issue(text)
    assert (issue.line, issue.column) == (7, 7)
    assert issue.message == (
        "invalid YAML: expected ',' or ']', but got '-' "
        "(while parsing a flow sequence that starts at line 6, column 13)"
    )
    unclosed = only_issue(HEAD + 'description: "never closed\nblocks: {}\n')
    assert unclosed.message == (
        "invalid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar that starts at line 3, column 14)"
    )


def test_invalid_yaml_context_at_the_problem_itself_is_not_repeated() -> None:
    issue = only_issue(HEAD + "blocks:\n  a: b: c\n")
    assert "while" not in issue.message  # its context mark is the problem's line


def test_unknown_field_lists_expected_fields() -> None:
    issue = only_issue(HEAD + "blocks:\n  a:\n    handler: h:a\n    replica: 2\n")
    assert (issue.line, issue.column) == (6, 5)  # the key, not its value
    assert issue.path == "blocks.a.replica"
    assert issue.message.startswith("unknown field 'replica' (expected one of: ")
    assert "app, balancer," in issue.message
    assert "replicas" in issue.message


def test_unknown_nested_field_lists_fields_of_that_model() -> None:
    issue = only_issue(HEAD + "defaults:\n  retries: {attempt: 3}\nblocks:\n  a: {handler: h:a}\n")
    assert issue.path == "defaults.retries.attempt"
    assert issue.message == (
        "unknown field 'attempt' (expected one of: attempts, backoff, max_backoff, on)"
    )


def test_wrong_type_names_field_and_value() -> None:
    issue = only_issue(HEAD + "blocks:\n  a:\n    handler: h:a\n    replicas: many\n")
    assert (issue.line, issue.column) == (6, 15)
    assert issue.path == "blocks.a.replicas"
    assert "valid integer" in issue.message
    assert issue.message.endswith("(got 'many')")


def test_bad_duration_names_field() -> None:
    issue = only_issue(HEAD + "defaults:\n  timeout: 5 minutes\nblocks:\n  a: {handler: h:a}\n")
    assert (issue.line, issue.column, issue.path) == (4, 12, "defaults.timeout")
    assert issue.message == (
        "expected a duration such as 250ms, 30s or 2m (units: ms, s, m, h; none: seconds), "
        "got '5 minutes'"
    )


def test_negative_duration_and_size_name_their_bound() -> None:
    text = (
        HEAD
        + "defaults:\n  timeout: -1s\n  drain: -2\n  max_body: -1KB\nblocks:\n  a: {handler: h:a}\n"
    )
    timeout, drain, max_body = issues_of(text)
    assert (timeout.line, timeout.column, timeout.path) == (4, 12, "defaults.timeout")
    assert timeout.message == "must be more than 0 (leave it out for 30s)"  # 0 is no timeout
    assert (drain.line, drain.path) == (5, "defaults.drain")
    assert drain.message == "expected a duration of 0 or more, got -2"
    assert (max_body.line, max_body.column, max_body.path) == (6, 13, "defaults.max_body")
    assert max_body.message == "expected a size of more than 0, got '-1KB'"


def test_unknown_block_in_pipeline_points_at_the_item() -> None:
    text = HEAD + "blocks:\n  a: {handler: h:a}\npatterns:\n  p:\n    pipeline: [a, nope]\n"
    issue = only_issue(text)
    assert (issue.line, issue.column) == (7, 19)
    assert issue.path == "patterns.p.pipeline[1]"
    assert issue.message == "unknown block or pattern 'nope' (expected one of: a, p)"


def test_duplicate_block_key_is_reported_not_overwritten() -> None:
    issue = only_issue(HEAD + "blocks:\n  a:\n    handler: h:a\n  a:\n    handler: h:b\n")
    assert (issue.line, issue.column) == (6, 3)
    assert issue.path == "blocks.a"
    assert issue.message == "duplicate key (first at line 4)"


def test_cyclic_pattern_nesting_is_reported_for_each_pattern() -> None:
    text = (
        HEAD
        + "blocks:\n  a: {handler: h:a}\n"
        + "patterns:\n  p:\n    pipeline: [a, q]\n  q:\n    pipeline: [p]\n"
    )
    first, second = issues_of(text)
    assert (first.line, first.column, first.path) == (7, 19, "patterns.p.pipeline[1]")
    assert first.message == "patterns nest in a cycle: p -> q -> p"
    assert (second.line, second.column, second.path) == (9, 16, "patterns.q.pipeline[0]")
    assert second.message == "patterns nest in a cycle: q -> p -> q"


def test_pattern_nested_in_itself() -> None:
    issue = only_issue(HEAD + "blocks:\n  a: {handler: h:a}\npatterns:\n  p: {pipeline: [a, p]}\n")
    assert issue.path == "patterns.p.pipeline[1]"
    assert issue.message == "patterns nest in a cycle: p -> p"


def test_fixed_port_needs_one_replica() -> None:
    issue = only_issue(HEAD + "blocks:\n  a:\n    handler: h:a\n    port: 8080\n    replicas: 2\n")
    assert (issue.line, issue.column) == (6, 11)
    assert issue.path == "blocks.a.port"
    assert issue.message == "a fixed port needs replicas: 1 (block has 2)"


def test_fixed_port_with_replicas_from_defaults() -> None:
    text = HEAD + "defaults: {replicas: 3}\nblocks:\n  a: {handler: h:a, port: 8080}\n"
    assert only_issue(text).message == "a fixed port needs replicas: 1 (block has 3)"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file(text: str) -> None:
    issue = only_issue(text)
    assert (issue.file, issue.line, issue.column, issue.path) == ("mesh.yaml", 1, 1, "")
    assert issue.message == "the spec is empty"


def test_spec_must_be_a_mapping() -> None:
    assert only_issue("- a\n- b\n").message == "the spec must be a mapping"


def test_missing_required_field() -> None:
    issue = only_issue("apiVersion: eblocks/v1\nblocks:\n  a: {handler: h:a}\n")
    assert issue.message == "missing required field 'mesh'"
    assert (issue.line, issue.column) == (1, 1)


def test_missing_nested_field_names_its_parent() -> None:
    issue = only_issue(HEAD + "blocks:\n  a: {handler: h:a}\npatterns:\n  p:\n    description: x\n")
    assert issue.path == "patterns.p"
    assert issue.message == (
        "pattern 'p' sets no kind; a pattern sets exactly one of: "
        "pipeline, manager-worker, divide-conquer"
    )
    assert issue.line == 7


def test_block_needs_exactly_one_entry_point() -> None:
    issue = only_issue(HEAD + "blocks:\n  a:\n    handler: h:a\n    app: h:make\n")
    assert issue.path == "blocks.a"
    assert issue.message == "set exactly one of 'handler', 'app', 'external' or 'gateway'"


def test_bad_block_name_points_at_the_key() -> None:
    issue = only_issue(HEAD + "blocks:\n  Bad_Name:\n    handler: h:a\n")
    assert (issue.line, issue.column) == (4, 3)
    assert issue.path == "blocks.Bad_Name"
    assert "should match pattern" in issue.message


def test_several_errors_are_reported_together_in_file_order() -> None:
    text = (
        HEAD
        + "blocks:\n"
        + "  a:\n    handler: h:a\n    replicas: 0\n"
        + "  b:\n    handler: h:b\n    colour: red\n"
        + "patterns:\n  p:\n    pipeline: [a, zzz]\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "mesh.yaml")
    paths = [issue.path for issue in info.value.issues]
    assert paths == ["blocks.a.replicas", "blocks.b.colour", "patterns.p.pipeline[1]"]
    assert [issue.line for issue in info.value.issues] == [6, 9, 12]
    text_of_error = str(info.value)
    assert text_of_error.startswith("3 problems in spec\n")
    assert "  mesh.yaml:9:5: blocks.b.colour: unknown field 'colour'" in text_of_error


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="1 problem in spec"):
        parse_spec("", "mesh.yaml")


def test_load_spec_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(HEAD + "blocks:\n  a: {handler: h:a, replicas: x}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value.issues[0]).startswith(f"{path}:4:")


def test_load_spec_of_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec") as info:
        load_spec(tmp_path / "absent.yaml")
    assert info.value.issues[0].file == str(tmp_path / "absent.yaml")
    assert (
        str(info.value.issues[0])
        == f"{tmp_path / 'absent.yaml'}: cannot read spec: No such file or directory"
    )


def test_spec_issue_text() -> None:
    assert str(SpecIssue("f.yaml", 3, 5, "blocks.a", "bad")) == "f.yaml:3:5: blocks.a: bad"
    assert str(SpecIssue("f.yaml", 1, 1, "", "empty")) == "f.yaml:1:1: empty"


def test_format_path() -> None:
    assert format_path(("patterns", "p", "pipeline", 2)) == "patterns.p.pipeline[2]"
    assert format_path(()) == ""


def test_gateway_route_to_an_unknown_block_points_at_it() -> None:
    text = (
        HEAD
        + "blocks:\n  a: {handler: h:a}\n  edge:\n    gateway:\n      kind: ingress\n"
        + "      routes:\n        - {name: r, to: nope}\n"
    )
    issue = only_issue(text)
    assert issue.path == "blocks.edge.gateway.routes[0].to"
    assert issue.line == 9
    assert issue.message == "unknown block or pattern 'nope' (expected one of: a)"


def test_a_block_is_a_handler_an_app_or_a_gateway() -> None:
    text = (
        HEAD + "blocks:\n  a:\n    handler: h:a\n    gateway: {kind: egress, allow: [{host: x}]}\n"
    )
    issue = only_issue(text)
    assert issue.path == "blocks.a"
    assert "exactly one of 'handler', 'app', 'external' or 'gateway'" in issue.message
    bad_kind = only_issue(HEAD + "blocks:\n  a:\n    gateway: {kind: sideways}\n")
    assert bad_kind.path.startswith("blocks.a.gateway")


def test_an_unquoted_on_key_is_the_field_not_a_boolean() -> None:
    spec = parse_spec(HEAD + "blocks:\n  a:\n    handler: h:a\n    retries: {on: [503]}\n")
    retries = spec.blocks["a"].retries
    assert retries is not None
    assert retries.on == (503,)


BOSS = "blocks:\n  boss: {}\n  sq: {handler: h:sq}\npatterns:\n  pool:\n"
KINDS = "a pattern sets exactly one of: pipeline, manager-worker, divide-conquer"


@pytest.mark.parametrize(
    ("body", "column", "field", "fields"),
    [
        (
            "workers: 3",
            16,
            "workers",
            "forecast, horizon, max, min, scale_down_delay, scale_up_delay, target_inflight",
        ),
        ("queue: 10", 14, "queue", "max"),
    ],
)
def test_a_scalar_for_a_nested_model_lists_its_fields(
    body: str, column: int, field: str, fields: str
) -> None:
    text = (
        HEAD + BOSS + f"    manager-worker:\n      manager: boss\n      worker: sq\n      {body}\n"
    )
    issue = only_issue(text)
    assert (issue.line, issue.column) == (11, column)
    assert issue.path == f"patterns.pool.manager-worker.{field}"
    assert issue.message == f"expected a mapping with fields {fields} (got {body.split()[-1]})"


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ("upper", "expected a list of stages such as [a, b] (got 'upper')"),
        ("{a: 1}", "expected a list of stages such as [a, b] (got {'a': 1})"),
        ("[]", "a pipeline needs at least one stage, as in [a, b]"),
    ],
)
def test_a_pipeline_is_a_list_of_at_least_one_stage(stages: str, message: str) -> None:
    issue = only_issue(
        HEAD + f"blocks:\n  a: {{handler: h:a}}\npatterns:\n  p:\n    pipeline: {stages}\n"
    )
    assert (issue.line, issue.column, issue.path) == (7, 15, "patterns.p.pipeline")
    assert issue.message == message


def test_a_list_field_given_a_scalar_says_list_not_tuple() -> None:
    issue = only_issue(HEAD + "blocks:\n  a:\n    external: {command: postgres, port: 5432}\n")
    assert (issue.line, issue.column, issue.path) == (5, 25, "blocks.a.external.command")
    assert issue.message == "expected a list (got 'postgres')"


@pytest.mark.parametrize(
    ("key", "guess"),
    [
        ("pipline", "pipeline"),
        ("master-worker", "manager-worker"),
        ("divide_conquer", "divide-conquer"),
    ],
)
def test_an_unknown_pattern_kind_is_named_with_a_guess(key: str, guess: str) -> None:
    issue = only_issue(HEAD + f"blocks:\n  a: {{handler: h:a}}\npatterns:\n  p:\n    {key}: [a]\n")
    assert (issue.line, issue.column, issue.path) == (7, 5, "patterns.p")
    assert issue.message == (
        f"pattern 'p' sets no kind: unknown key {key!r} (did you mean {guess!r}?); {KINDS}"
    )


def test_unknown_pattern_keys_without_a_near_kind_are_all_named() -> None:
    text = HEAD + "blocks:\n  a: {handler: h:a}\npatterns:\n  p:\n    stages: [a]\n    steps: [a]\n"
    issue = only_issue(text)
    assert (issue.line, issue.path) == (7, "patterns.p")
    assert issue.message == f"pattern 'p' sets no kind: unknown keys 'stages', 'steps'; {KINDS}"


def test_a_misspelt_manager_worker_blames_the_pattern_not_its_manager() -> None:
    issue = only_issue(HEAD + BOSS + "    manager_worker: {manager: boss, worker: sq}\n")
    assert (issue.line, issue.column, issue.path) == (8, 5, "patterns.pool")
    assert issue.message == (
        "pattern 'pool' sets no kind: unknown key 'manager_worker' "
        f"(did you mean 'manager-worker'?); {KINDS}"
    )


def test_an_unindented_manager_worker_blames_the_pattern_not_its_manager() -> None:
    text = HEAD + BOSS + "    manager-worker:\n    manager: boss\n    worker: sq\n"
    body, manager, worker = issues_of(text)
    assert (body.line, body.column, body.path) == (8, 20, "patterns.pool.manager-worker")
    assert body.message == (
        "expected a mapping with fields attempts, balancer, concurrency, manager, queue, worker, "
        "workers (got None)"
    )
    assert (manager.line, manager.path) == (9, "patterns.pool.manager")
    assert manager.message == (
        "unknown field 'manager' (expected one of: description, manager-worker)"
    )
    assert (worker.line, worker.path) == (10, "patterns.pool.worker")


def test_a_block_without_an_entry_point_hears_that_only_a_manager_may() -> None:
    issue = only_issue(HEAD + "blocks:\n  a: {replicas: 2}\n")
    assert (issue.line, issue.column, issue.path) == (4, 6, "blocks.a")
    assert issue.message == (
        "set exactly one of 'handler', 'app', 'external' or 'gateway' "
        "(only the manager of a manager-worker pattern may set none)"
    )
