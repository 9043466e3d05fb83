"""Load `mesh.yaml` into a :class:`MeshSpec`, reporting every problem with its line.

PyYAML's composer gives nodes with start marks; we construct plain Python
objects from those nodes ourselves so that each value's path maps back to its
line and column, and so that duplicate keys (which PyYAML silently overwrites)
are reported instead of losing a block.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from eblocks.errors import SpecError, SpecIssue
from eblocks.spec.check import check_references, check_warnings
from eblocks.spec.models import PATTERN_KINDS, MeshSpec

__all__ = ["Loc", "format_path", "load_spec", "parse_spec"]

Loc = tuple[str | int, ...]
_Marks = dict[Loc, tuple[int, int]]
_KEY = "[key]"  # pydantic's location tag for an error in a mapping key, not its value


def load_spec(path: str | Path, *, warnings: list[SpecIssue] | None = None) -> MeshSpec:
    """Read and validate a spec file; raises :class:`SpecError` listing every issue.

    ``warnings``, when given, gets what is valid but cannot work as written
    (`check_warnings`), in the same file:line:col form as the issues.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecError([SpecIssue(str(file), 0, 0, "", f"cannot read spec: {reason}")]) from exc
    return parse_spec(text, str(file), warnings=warnings)


def parse_spec(
    text: str, filename: str = "<spec>", *, warnings: list[SpecIssue] | None = None
) -> MeshSpec:
    """Validate spec text; ``filename`` is used in error locations.

    ``warnings``, when given, gets what is valid but cannot work as written.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = f"invalid YAML: {exc.problem or exc}{_yaml_context(exc)}"
        raise SpecError([SpecIssue(filename, line, col, "", message)]) from exc
    if node is None:
        raise SpecError([SpecIssue(filename, 1, 1, "", "the spec is empty")])
    marks: _Marks = {}
    issues: list[SpecIssue] = []
    data = _construct(node, (), marks, issues, filename)
    if not isinstance(data, dict):
        line, col = marks[()]
        issues.append(SpecIssue(filename, line, col, "", "the spec must be a mapping"))
        raise SpecError(issues)
    for loc, message in check_references(data):
        issues.append(_issue(loc, message, marks, filename))
    try:
        spec = MeshSpec.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, marks, filename))
        raise SpecError(_sorted(issues)) from exc
    if issues:
        raise SpecError(_sorted(issues))
    if warnings is not None:
        found = [_issue(loc, message, marks, filename) for loc, message in check_warnings(spec)]
        warnings.extend(_sorted(found))
    return spec


def _yaml_context(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's context of a syntax error (the construct the problem broke), when it is
    elsewhere: " (while parsing a flow sequence that starts at line 15, column 21)"."""
    context, mark, problem = exc.context, exc.context_mark, exc.problem_mark
    if not context or mark is None or problem is None or exc.problem is None:
        return ""
    if (mark.line, mark.column) == (problem.line, problem.column):
        return ""
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    # "while parsing a block mapping" names a construct; "found duplicate anchor 'a';
    # first occurrence" names a place
    joint = " that starts at " if context.startswith("while ") else " at "
    return f" ({context}{joint}{where})"


def format_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if part == _KEY:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _construct(node: yaml.Node, loc: Loc, marks: _Marks, issues: list[SpecIssue], file: str) -> Any:
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            # every key of a spec is a name: a plain scalar key is its text, so the
            # YAML 1.1 booleans (`on:`, `yes:`) stay the field names they look like
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
            else:
                key = yaml.constructor.SafeConstructor().construct_object(key_node)
            if not isinstance(key, str | int | float | bool) or key is None:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                issues.append(SpecIssue(file, line, col, format_path(loc), "keys must be scalars"))
                continue
            key = str(key)
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in out:
                first = first_lines[key]
                where = format_path((*loc, key))
                issues.append(
                    SpecIssue(file, line, col, where, f"duplicate key (first at line {first})")
                )
                continue
            first_lines[key] = line
            marks[(*loc, key, _KEY)] = (line, col)
            out[key] = _construct(value_node, (*loc, key), marks, issues, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*loc, index), marks, issues, file)
            for index, item in enumerate(node.value)
        ]
    return yaml.constructor.SafeConstructor().construct_object(node)


def _pydantic_issues(exc: ValidationError, marks: _Marks, file: str) -> Iterable[SpecIssue]:
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_fields(loc[:-1])
            message = f"unknown field {loc[-1]!r}" + (
                f" (expected one of: {', '.join(allowed)})" if allowed else ""
            )
        elif kind == "missing":
            message = f"missing required field {loc[-1]!r}"
        elif kind == "pattern_kind":
            message = f"pattern {loc[-1]!r} sets {_kinds_in(error.get('input'))}; {message}"
        elif kind == "model_type":  # "a valid dictionary or instance of WorkersSpec"
            allowed = _allowed_fields(loc)
            fields = f" with fields {', '.join(allowed)}" if allowed else ""
            message = f"expected a mapping{fields} (got {error.get('input')!r})"
        elif kind == "tuple_type":  # YAML has lists, not tuples
            message = f"expected a list (got {error.get('input')!r})"
        elif kind not in {"value_error", "assertion_error"} and "input" in error:
            message = f"{message} (got {error['input']!r})"
        at = _known(loc, marks)
        if kind == "extra_forbidden" and (*at, _KEY) in marks:
            at = (*at, _KEY)  # point at the unknown key itself, not its value
        yield _issue(at, message, marks, file, shown=loc)


def _known(loc: Loc, marks: _Marks) -> Loc:
    """Drop pydantic's union tags from a location so it names YAML keys only."""
    kept: list[str | int] = []
    for part in loc:
        if (*kept, part) in marks:
            kept.append(part)
    return tuple(kept)


def _issue(loc: Loc, message: str, marks: _Marks, file: str, shown: Loc | None = None) -> SpecIssue:
    probe = loc
    while probe not in marks and probe:
        probe = probe[:-1]
    line, col = marks.get(probe, (0, 0))
    return SpecIssue(file, line, col, format_path(_known(shown, marks) if shown else loc), message)


def _kinds_in(value: Any) -> str:
    """What a pattern that is not exactly one kind sets: its kinds, or its unknown keys."""
    if not isinstance(value, dict):
        return "no kind"
    kinds = [key for key in PATTERN_KINDS if key in value]
    if kinds:
        return " and ".join(kinds)
    fields = {f.alias or n for m in PATTERN_KINDS.values() for n, f in m.model_fields.items()}
    unknown = [key for key in value if key not in fields]
    if not unknown:
        return "no kind"
    named = ", ".join(
        repr(key)
        + "".join(f" (did you mean {m!r}?)" for m in get_close_matches(key, PATTERN_KINDS, 1))
        for key in unknown
    )
    return f"no kind: unknown key{'s' if len(unknown) > 1 else ''} {named}"


def _allowed_fields(loc: Loc) -> list[str]:
    """Field names (as written in YAML) of the model found at ``loc``.

    A union (the pattern kinds) holds several models until a union tag in
    ``loc`` (the model's name) selects one.
    """
    models: list[type[BaseModel]] = [MeshSpec]
    for part in loc:
        tagged = [m for m in models if m.__name__ == part]
        if tagged:
            models = tagged
            continue
        field = next(
            (f for m in models for n, f in m.model_fields.items() if part in (n, f.alias)), None
        )
        if field is None:
            continue  # a dict key such as a block name
        models = _models_of(field.annotation)
    if len(models) != 1:
        return []
    return sorted(f.alias or n for n, f in models[0].model_fields.items())


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_of(arg)]


def _sorted(issues: list[SpecIssue]) -> list[SpecIssue]:
    return sorted(issues, key=lambda i: (i.line, i.column, i.path))
