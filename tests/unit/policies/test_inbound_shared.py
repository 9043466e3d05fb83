"""What the inbound policy layers share: sources, source globs, rule keys, per-version caches."""

from __future__ import annotations

from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.inbound import (
    UNKNOWN_SOURCE,
    PerVersion,
    glob_match,
    rule_keys,
    source_names,
    source_of,
)
from eblocks.spec.policies import Policies, RateLimit


def test_the_source_is_the_verified_peer_then_the_header_then_unknown() -> None:
    header = {"x-eblocks-source": "web"}
    assert source_of("spiffe://td/mesh/m/block/api", header) == "spiffe://td/mesh/m/block/api"
    assert source_of(None, header) == "web"
    assert source_of(None, {}) == UNKNOWN_SOURCE


def test_globs_match_the_short_name_and_the_full_identity() -> None:
    block = "spiffe://td/mesh/m/block/batch-1"
    assert source_names(block) == ("batch-1", block)
    assert source_names("spiffe://td/mesh/m/client/cli") == (
        "client/cli",
        "spiffe://td/mesh/m/client/cli",
    )
    assert source_names("web") == ("web",)
    assert glob_match(block, ["batch-*"])
    assert glob_match(block, ["spiffe://td/*"])
    assert glob_match("spiffe://td/mesh/m/client/cli", ["client/*"])
    assert not glob_match("web", ["batch-*", "client/*"])


def test_rule_keys_are_the_rule_not_its_place_and_tell_twins_apart() -> None:
    a, b = RateLimit(rate=1), RateLimit(rate=2)
    first = rule_keys([a, b])
    assert rule_keys([b, a]) == [first[1], first[0]]
    twins = rule_keys([a, RateLimit(rate=1)])
    assert len(set(twins)) == 2
    assert twins[0] == first[0]


def test_a_per_version_value_is_rebuilt_once_per_new_state() -> None:
    live = LivePolicies.of(Policies())
    builds: list[tuple[int, int]] = []

    def build(state: PolicyState, previous: int) -> int:
        builds.append((state.version, previous))
        return previous + 1

    cache = PerVersion(live, build, 0)
    assert [cache.get() for _ in range(3)] == [1, 1, 1]
    live.swap(PolicyState.of(Policies(), version=4))
    assert [cache.get() for _ in range(3)] == [2, 2, 2]
    assert builds == [(0, 0), (4, 1)]
