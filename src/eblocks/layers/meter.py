"""What the resilience layers count, published through a `Telemetry`'s hooks.

One `Meter` per `Telemetry` (`meter_of`), shared by the stacks of every
target; the counts live in plain ints and dicts and are read at scrape time::

    eblocks_retry_budget_exhausted_total{src_block,dst_block}   failed tries not retried
    eblocks_outlier_ejections_total{src_block,dst_block}        breakers opened
    eblocks_endpoint_breaker_state{src_block,dst_block,endpoint,state}   1 for its state

Retries themselves are ``eblocks_retries_total`` (`eblocks.layers.telemetry`);
tries refused by ``max_pending`` are ``eblocks_request_errors_total{reason="overloaded"}``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence

from eblocks.layers.outlier import Breaker, Detectors
from eblocks.telemetry.core import Telemetry

__all__ = ["Meter", "meter_of"]

_METERS: weakref.WeakKeyDictionary[Telemetry, Meter] = weakref.WeakKeyDictionary()


def meter_of(telemetry: Telemetry) -> Meter:
    """The `Meter` of ``telemetry``, made (and its metrics registered) on first use."""
    meter = _METERS.get(telemetry)
    if meter is None:
        meter = _METERS[telemetry] = Meter(telemetry)
    return meter


class Meter:
    """Retry-budget refusals per target, and the breakers of each target's endpoints."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._block = telemetry.block
        self.refused: dict[str, int] = {}
        self._detectors: dict[str, Detectors] = {}
        hooks = telemetry.hooks
        hooks.counter(
            "eblocks_retry_budget_exhausted",
            "Failed outbound tries not retried because the target's retry budget was spent",
            ("src_block", "dst_block"),
            self._refusals,
        )
        hooks.counter(
            "eblocks_outlier_ejections",
            "Endpoints ejected by outlier detection (breakers opened)",
            ("src_block", "dst_block"),
            self._ejections,
        )
        hooks.gauge(
            "eblocks_endpoint_breaker_state",
            "1 for the state (closed, open, half_open) of each endpoint's breaker",
            ("src_block", "dst_block", "endpoint", "state"),
            self._states,
        )

    def on_refused(self, target: str) -> Callable[[], None]:
        """The callback the retry layer of ``target`` calls on each refusal."""
        self.refused.setdefault(target, 0)

        def count() -> None:
            self.refused[target] += 1

        return count

    def watch(self, target: str, detectors: Detectors) -> None:
        """Publish the breakers of ``target``'s endpoints."""
        self._detectors[target] = detectors

    def _refusals(self) -> Iterator[tuple[Sequence[str], float]]:
        for target, count in sorted(self.refused.items()):
            yield (self._block, target), float(count)

    def _ejections(self) -> Iterator[tuple[Sequence[str], float]]:
        for target, detectors in sorted(self._detectors.items()):
            yield (self._block, target), float(detectors.ejections)

    def _states(self) -> Iterator[tuple[Sequence[str], float]]:
        for target, detectors in sorted(self._detectors.items()):
            for instance, state in detectors.states():
                for each in Breaker:
                    value = 1.0 if each is state else 0.0
                    yield (self._block, target, instance, each.name.lower()), value
