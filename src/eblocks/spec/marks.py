"""Where a path of a spec file is: the loader's line marks, for messages made after loading.

`eblocks apply` finds some problems only once it has asked the running mesh
(a route to a block the mesh does not run), and `eblocks diff`/`apply` warn
about policies that cannot work; both point at the file as `eblocks validate`
does, ``mesh.yaml:12:9: policies.routes[3].destinations[0].block: ...``. The
marks are the loader's own (`eblocks.spec.loader`): the same walk of the YAML
nodes, the same nearest-known-ancestor rule for a path it did not see.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from eblocks.errors import SpecIssue
from eblocks.spec.loader import Loc, _construct, _issue  # the loader's own walk, same package

__all__ = ["SpecMarks"]


class SpecMarks:
    """The line and column of every path of one spec file."""

    __slots__ = ("file", "marks")

    def __init__(self, file: str, marks: dict[Loc, tuple[int, int]]) -> None:
        self.file = file
        self.marks = marks

    @classmethod
    def of_text(cls, text: str, file: str) -> SpecMarks:
        """The marks of ``text``; none (every issue at line 0: the file) if it is not YAML."""
        marks: dict[Loc, tuple[int, int]] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            return cls(file, marks)
        if node is not None:
            _construct(node, (), marks, [], file)
        return cls(file, marks)

    @classmethod
    def of_file(cls, path: str | Path) -> SpecMarks:
        """The marks of the spec file at ``path`` (none if it cannot be read)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            return cls(str(path), {})
        return cls.of_text(text, str(path))

    def issue(self, loc: Loc, message: str) -> SpecIssue:
        """``message`` about ``loc``, at its line (or its nearest ancestor's): file:line:col."""
        return _issue(loc, message, self.marks, self.file)
