"""Policy warnings: a route after a match-all route of the same `to` is never reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from eblocks.policies.lint import matches_every_call, unreachable_routes
from eblocks.spec import parse_spec
from eblocks.spec.marks import SpecMarks
from eblocks.spec.policies import Policies

HEAD = """\
apiVersion: eblocks/v1
mesh: shop
blocks:
  store: {handler: m:s, labels: {version: v1}}
  store-v2: {handler: m:s2}
  front: {handler: m:f}
policies:
  routes:
"""


def routes(text: str) -> Policies:
    return parse_spec(HEAD + text, "mesh.yaml").policies


def warned(text: str) -> list[str]:
    marks = SpecMarks.of_text(HEAD + text, "mesh.yaml")
    return [str(marks.issue(loc, message)) for loc, message in unreachable_routes(routes(text))]


def test_a_route_after_a_match_all_route_of_the_same_target_is_never_reached() -> None:
    text = """\
    - name: canary
      to: store
      destinations: [{block: store-v2, weight: 10}, {block: store, weight: 90}]
    - name: beta
      to: store
      match: [{headers: {x-tenant: {exact: beta}}}]
"""
    assert list(unreachable_routes(routes(text))) == [
        (
            ("policies", "routes", 1),
            "'beta' is never reached: routes[0] 'canary' matches every call to 'store'",
        )
    ]
    assert warned(text) == [
        "mesh.yaml:12:7: policies.routes[1]: 'beta' is never reached: "
        "routes[0] 'canary' matches every call to 'store'"
    ]


@pytest.mark.parametrize(
    "first",
    [
        "{name: a, to: store}",
        "{name: a, to: store, match: []}",
        "{name: a, to: store, match: [{}]}",
        "{name: a, to: store, match: [{headers: {x-t: {exact: b}}}, {}]}",
        "{name: a, to: store, match: [{methods: [POST]}]}",  # every call between blocks
        "{name: a, to: store, sticky: {}, destinations: [{block: store-v2}]}",
        "{name: a, to: store, destinations: [{subset: {version: v1}}]}",
    ],
)
def test_what_matches_every_call(first: str) -> None:
    text = f"    - {first}\n    - {{name: b, to: store, match: [{{path: {{prefix: /x}}}}]}}\n"
    assert matches_every_call(routes(text).routes[0])
    assert [loc for loc, _ in unreachable_routes(routes(text))] == [("policies", "routes", 1)]


@pytest.mark.parametrize(
    "first",
    [
        "{name: a, to: store, match: [{headers: {x-t: {exact: b}}}]}",
        "{name: a, to: store, match: [{methods: [GET]}]}",
        "{name: a, to: front}",  # another target
    ],
)
def test_what_does_not_hide_the_routes_after_it(first: str) -> None:
    text = f"    - {first}\n    - {{name: b, to: store}}\n"
    assert list(unreachable_routes(routes(text))) == []


def test_each_route_after_the_first_match_all_names_that_one() -> None:
    text = """\
    - {name: tenant, to: store, match: [{headers: {x-t: {exact: b}}}]}
    - {name: all, to: store}
    - {name: front-all, to: front}
    - {name: also-all, to: store}
    - {name: admin, to: store, match: [{path: {prefix: /admin}}]}
"""
    assert [m for _, m in unreachable_routes(routes(text))] == [
        "'also-all' is never reached: routes[1] 'all' matches every call to 'store'",
        "'admin' is never reached: routes[1] 'all' matches every call to 'store'",
    ]


def test_marks_point_where_the_loader_points_and_at_the_file_without_them(
    tmp_path: Path,
) -> None:
    text = HEAD + "    - {name: a, to: store, destinations: [{block: ghost}]}\n"
    with pytest.raises(ValueError, match=r"mesh\.yaml:9:51: policies\.routes\[0\]"):
        parse_spec(text, "mesh.yaml")
    loc = ("policies", "routes", 0, "destinations", 0, "block")
    assert str(SpecMarks.of_text(text, "mesh.yaml").issue(loc, "x")).startswith("mesh.yaml:9:51: ")
    # a path the file does not have: its nearest ancestor's place
    deeper = (*loc[:-1], "subset", "version")
    assert SpecMarks.of_text(text, "m.yaml").issue(deeper, "x").line == 9
    missing = tmp_path / "gone.yaml"
    assert str(SpecMarks.of_file(missing).issue(loc, "x")) == (
        f"{missing}: policies.routes[0].destinations[0].block: x"
    )
    assert SpecMarks.of_text("a: [", "bad.yaml").issue(loc, "x").line == 0
