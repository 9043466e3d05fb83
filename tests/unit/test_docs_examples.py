"""Every YAML example in the policy and gateway docs is a valid part of a spec.

Each example is put into a minimal spec and parsed by the real loader; the
blocks and patterns it names are declared for it (found from the loader's own
"unknown block" errors), so an example can't drift from the spec's models.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from eblocks.errors import SpecError
from eblocks.spec import parse_spec

DOCS = Path(__file__).resolve().parents[2] / "docs"


class _TextKeys(yaml.SafeLoader):
    """YAML without the 1.1 booleans (`on`, `yes`), as the spec loader reads keys."""


_TextKeys.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _examples() -> list[tuple[str, int, str]]:
    found = []
    for name in ("policies.md", "gateways.md"):
        text = (DOCS / name).read_text(encoding="utf-8")
        for match in re.finditer(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
            line = text.count("\n", 0, match.start()) + 2
            found.append((name, line, match.group(1)))
    return found


_UNKNOWN = re.compile(r"unknown (block or pattern|block|pattern) '([a-z0-9-]+)'")


@pytest.mark.parametrize(("doc", "line", "example"), _examples(), ids=lambda v: str(v)[:30])
def test_the_example_is_a_valid_spec_part(doc: str, line: int, example: str) -> None:
    data: dict[str, Any] = yaml.load(example, Loader=_TextKeys)
    blocks: dict[str, Any] = {"a": {"handler": "h:a"}}
    patterns: dict[str, Any] = {}
    for _ in range(20):
        spec = {"apiVersion": "eblocks/v1", "mesh": "docs", **data}
        spec["blocks"] = {**blocks, **data.get("blocks", {})}
        if patterns or "patterns" in data:
            spec["patterns"] = {**patterns, **data.get("patterns", {})}
        try:
            parse_spec(yaml.safe_dump(spec, sort_keys=False), f"{doc}:{line}")
        except SpecError as exc:
            missing = [m for issue in exc.issues for m in _UNKNOWN.findall(issue.message)]
            new = [(kind, n) for kind, n in missing if n not in blocks and n not in patterns]
            if not new:
                raise
            for kind, n in new:
                if kind == "pattern":
                    patterns[n] = {"pipeline": ["a"]}
                else:
                    blocks[n] = {"handler": f"h:{n.replace('-', '_')}"}
            continue
        return
    pytest.fail(f"{doc}:{line}: the example names too many unknown blocks")
