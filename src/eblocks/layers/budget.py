"""Retry budget: how many retries a caller may add to one target, as Linkerd's budget.

Over a sliding window, retries may be at most ``ratio`` x first tries plus
``min_per_second`` x window. A budget is a pure counter with an injected
`Clock`: the window is ``BUCKETS`` buckets of ``window / BUCKETS`` seconds
each, with running totals, so recording a try or asking for a retry is O(1)
(rolling past idle buckets costs at most ``BUCKETS`` steps). The window thus
spans between ``(BUCKETS - 1) / BUCKETS`` and all of ``window``.

`Budgets` hands the retry layer the budget of a target's current rule and
keeps its counts across policy versions while the rule is unchanged.
"""

from __future__ import annotations

from eblocks._types import Clock
from eblocks.policies import LivePolicies, PolicyState
from eblocks.spec.policies import RetryBudget

__all__ = ["BUCKETS", "Budget", "Budgets"]

BUCKETS = 10


class Budget:
    """The counts of first tries and retries over the last window."""

    __slots__ = (
        "_clock",
        "_epoch",
        "_firsts",
        "_retries",
        "_width",
        "allowance",
        "firsts",
        "ratio",
        "retries",
    )

    def __init__(self, rule: RetryBudget, clock: Clock) -> None:
        self._clock = clock
        self._width = rule.window / BUCKETS
        self.ratio = rule.ratio
        self.allowance = rule.min_per_second * rule.window  # retries always allowed per window
        self._firsts = [0] * BUCKETS
        self._retries = [0] * BUCKETS
        self._epoch = int(clock.monotonic() // self._width)
        self.firsts = 0
        self.retries = 0

    def first(self) -> None:
        """Count a first try (every call, retried or not, deposits into the budget)."""
        epoch = int(self._clock.monotonic() // self._width)  # `_roll`, inlined: every call
        if epoch != self._epoch:
            self._forget(epoch)
        self._firsts[epoch % BUCKETS] += 1
        self.firsts += 1

    def try_retry(self) -> bool:
        """Spend one retry if the window allows it; False (nothing counted) if it does not."""
        slot = self._roll()
        if self.retries + 1 > self.ratio * self.firsts + self.allowance:
            return False
        self._retries[slot] += 1
        self.retries += 1
        return True

    def counts(self) -> tuple[int, int]:
        """(first tries, retries) in the window now."""
        self._roll()
        return self.firsts, self.retries

    def _roll(self) -> int:
        """Forget the buckets that left the window; the index of the current one."""
        epoch = int(self._clock.monotonic() // self._width)
        if epoch != self._epoch:
            self._forget(epoch)
        return epoch % BUCKETS

    def _forget(self, epoch: int) -> None:
        """Empty the buckets of the epochs after the last one seen, up to ``epoch``."""
        for passed in range(max(self._epoch + 1, epoch - BUCKETS + 1), epoch + 1):
            slot = passed % BUCKETS
            self.firsts -= self._firsts[slot]
            self.retries -= self._retries[slot]
            self._firsts[slot] = self._retries[slot] = 0
        self._epoch = epoch


class Budgets:
    """The `Budget` of calls to one target under the policies in force, if it has one."""

    __slots__ = ("_budget", "_clock", "_live", "_rule", "_state", "_target")

    def __init__(self, live: LivePolicies, target: str, clock: Clock) -> None:
        self._live = live
        self._target = target
        self._clock = clock
        self._state: PolicyState | None = None  # the version the budget was looked up in
        self._rule: RetryBudget | None = None
        self._budget: Budget | None = None

    def __call__(self) -> Budget | None:
        state = self._live.current
        if state is self._state:
            return self._budget  # the common case: the same version, one identity test
        self._state = state
        rule = state.block(self._target).retry_budget
        if rule is not self._rule:
            if rule is None:
                self._budget = None
            elif self._budget is None or rule != self._rule:
                self._budget = Budget(rule, self._clock)  # a new rule starts a new window
            self._rule = rule
        return self._budget
