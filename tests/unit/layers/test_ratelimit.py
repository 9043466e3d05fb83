"""Rate limiting: token buckets on a fake clock, per block, per rule, per source, overrides."""

from __future__ import annotations

from typing import Any

import pytest

from eblocks.block.context import Context
from eblocks.errors import RateLimitedError
from eblocks.layers.ratelimit import RateLimiter, RateLimits, TokenBucket, rate_limit
from eblocks.message import PATH_HEADER, SOURCE_HEADER, Message
from eblocks.policies import LivePolicies, PolicyState
from eblocks.policies.match import RequestView, view_applies, view_of_message
from eblocks.spec.policies import Policies
from eblocks.testing import FakeClock


def policies(*rules: dict[str, Any], block: str = "store") -> Policies:
    return Policies.model_validate({"blocks": {block: {"rate_limits": list(rules)}}})


def view(path: str = "/") -> RequestView:
    return view_of_message(Message(b"", {PATH_HEADER: path}))


def admitted(limits: RateLimits, source: str = "a", path: str = "/") -> bool:
    try:
        limits.admit(limits.cache.get(), view_applies(lambda: view(path)), source)
    except RateLimitedError:
        return False
    return True


def test_a_bucket_starts_full_refills_at_its_rate_and_says_when_the_next_token_comes() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.tokens(100.0) == 3.0  # never more than the burst
    bucket.give_back()
    assert bucket.tokens(0.5) == pytest.approx(1.0)


def test_the_block_admits_burst_then_its_rate() -> None:
    clock = FakeClock()
    limits = RateLimits(LivePolicies.of(policies({"rate": 10, "burst": 5})), "store", clock)
    assert sum(admitted(limits) for _ in range(20)) == 5
    clock.advance(1.0)
    assert sum(admitted(limits) for _ in range(20)) == 5  # 10 tokens, but burst caps at 5
    admissions = 0
    for _ in range(100):  # 10 s at 10 per second, asking 100 times a second
        clock.advance(0.01)
        admissions += admitted(limits)
    assert admissions == 10


def test_the_refusal_names_the_rule_and_the_time_to_the_next_token() -> None:
    clock = FakeClock()
    limits = RateLimits(LivePolicies.of(policies({"rate": 4, "burst": 1})), "store", clock)
    assert admitted(limits)
    clock.advance(0.05)
    with pytest.raises(RateLimitedError) as caught:
        limits.admit(limits.cache.get(), view_applies(view), "a")
    err = caught.value
    assert (err.status, err.reason, err.origin) == (429, "rate_limited", "store")
    assert err.detail["rule"] == "rate_limits[0]"
    assert err.detail["retry_after"] == pytest.approx(0.2)


def test_per_source_buckets_are_separate_and_bounded() -> None:
    clock = FakeClock()
    live = LivePolicies.of(policies({"rate": 1, "burst": 2, "per": "source"}))
    limits = RateLimits(live, "store", clock, max_sources=3)
    assert [admitted(limits, "a") for _ in range(3)] == [True, True, False]
    assert [admitted(limits, "b") for _ in range(3)] == [True, True, False]
    (limiter,) = limits.cache.get()
    for source in ("c", "d", "e"):
        admitted(limits, source)
    assert len(limiter) == 3  # the least recently used ("a", "b") were dropped
    assert admitted(limits, "a")  # and "a" comes back with a full bucket


def test_a_run_of_requests_from_one_source_keeps_it_the_most_recently_used() -> None:
    clock = FakeClock()
    live = LivePolicies.of(policies({"rate": 1, "burst": 3, "per": "source"}))
    limits = RateLimits(live, "store", clock, max_sources=2)
    (limiter,) = limits.cache.get()
    assert [admitted(limits, s) for s in ("a", "b", "a", "a")] == [True] * 4
    assert admitted(limits, "c")  # drops "b", the least recently used, not "a"
    assert limiter.bucket("a").tokens(clock.monotonic()) == 0.0  # "a" kept its empty bucket
    assert not admitted(limits, "a")
    assert [admitted(limits, "b") for _ in range(4)] == [True, True, True, False]  # new, full


def test_a_rule_keeps_at_least_one_source() -> None:
    rule = Policies.model_validate({"blocks": {"s": {"rate_limits": [{"rate": 1}]}}})
    with pytest.raises(ValueError, match="max_sources must be >= 1"):
        RateLimiter(rule.blocks["s"].rate_limits[0], "r", FakeClock(), max_sources=0)


def test_overrides_give_matching_sources_their_rate() -> None:
    clock = FakeClock()
    rule = {
        "rate": 1,
        "burst": 1,
        "overrides": [{"source": ["batch-*"], "rate": 5, "burst": 5}],
    }
    limits = RateLimits(LivePolicies.of(policies(rule)), "store", clock)
    assert sum(admitted(limits, "batch-1") for _ in range(10)) == 5
    assert sum(admitted(limits, "batch-2") for _ in range(10)) == 0  # per block: one shared bucket
    assert sum(admitted(limits, "web") for _ in range(10)) == 1
    spiffe = "spiffe://example.org/mesh/m/block/batch-9"
    clock.advance(1.0)
    assert sum(admitted(limits, spiffe) for _ in range(10)) == 5  # the short name matches


def test_only_matching_requests_take_tokens_and_every_matching_rule_must_admit() -> None:
    clock = FakeClock()
    rules = (
        {"rate": 100, "burst": 3},
        {"rate": 1, "burst": 1, "match": {"path": {"prefix": "/slow"}}},
    )
    limits = RateLimits(LivePolicies.of(policies(*rules)), "store", clock)
    assert admitted(limits, path="/slow/a")
    assert not admitted(limits, path="/slow/b")  # refused by the second rule...
    general, _ = limits.cache.get()
    assert general.bucket("a").tokens(clock.monotonic()) == 2.0  # ...which gave the first one back
    assert admitted(limits, path="/fast")
    assert admitted(limits, path="/fast")
    assert not admitted(limits, path="/fast")


def test_a_new_version_with_the_same_rule_keeps_its_bucket() -> None:
    clock = FakeClock()
    live = LivePolicies.of(policies({"rate": 1, "burst": 2}))
    limits = RateLimits(live, "store", clock)
    assert [admitted(limits) for _ in range(3)] == [True, True, False]
    # another block's policy changes: this rule and its empty bucket stay
    other = Policies.model_validate(
        {"blocks": {"store": {"rate_limits": [{"rate": 1, "burst": 2}]}, "web": {"faults": []}}}
    )
    assert live.swap(PolicyState.of(other, version=1))
    assert not admitted(limits)
    # a new rule before it: renamed rate_limits[1], still the same bucket
    moved = policies({"rate": 50}, {"rate": 1, "burst": 2})
    assert live.swap(PolicyState.of(moved, version=2))
    with pytest.raises(RateLimitedError) as caught:
        limits.admit(limits.cache.get(), view_applies(view), "a")
    assert caught.value.detail["rule"] == "rate_limits[1]"
    # the rule itself changes: a new, full bucket
    assert live.swap(PolicyState.of(policies({"rate": 1, "burst": 3}), version=3))
    assert [admitted(limits) for _ in range(4)] == [True, True, True, False]


def test_another_blocks_rules_do_not_apply() -> None:
    limits = RateLimits(LivePolicies.of(policies({"rate": 1}, block="web")), "store", FakeClock())
    assert limits.cache.get() == ()
    assert all(admitted(limits) for _ in range(100))


def test_a_limiter_makes_buckets_only_for_sources_it_sees() -> None:
    rule = policies({"rate": 1, "per": "source"}).blocks["store"].rate_limits[0]
    limiter = RateLimiter(rule, "rate_limits[0]", FakeClock())
    assert len(limiter) == 0
    assert limiter.bucket("a") is limiter.bucket("a")
    assert len(limiter) == 1


async def test_the_layer_refuses_with_429_and_counts_the_denial() -> None:
    denials: list[tuple[str, str]] = []
    clock = FakeClock()
    live = LivePolicies.of(policies({"rate": 1, "burst": 1, "per": "source"}))
    limits = RateLimits(live, "store", clock, on_deny=lambda *a: denials.append(a))

    async def pm(msg: Message, ctx: Context) -> Message:
        return Message(b"ok")

    handle = rate_limit(limits)(pm)

    def ctx(peer: str | None = None) -> Context:
        context = Context(block="store", instance="store-0", request_id="r")
        context.peer = peer
        return context

    from_web = Message(b"", {SOURCE_HEADER: "web"})
    assert (await handle(from_web, ctx())).body == b"ok"
    with pytest.raises(RateLimitedError):
        await handle(from_web, ctx())
    # a verified identity is the source, whatever the header says
    assert (await handle(from_web, ctx("spiffe://td/mesh/m/block/web"))).body == b"ok"
    assert (await handle(Message(b""), ctx())).body == b"ok"  # "unknown" has its own bucket
    assert denials == [("rate_limited", "rate_limits[0]")]
