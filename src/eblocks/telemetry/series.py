"""Request series: what one instance counts per (direction, peer, route), cheaply.

A `Series` keeps, for one edge, the totals since start (per status code, a
latency histogram, bytes, retries, error reasons) and, for the sliding
windows of ``/v1/stats``, the totals at the start of each of the last
minute's seconds that had requests. Recording a request is plain integer
arithmetic on pre-allocated lists: no lock (everything runs on the event
loop's thread), no dict built per request (docs/decisions.md).

One set of latency buckets serves both readers: fine, log-spaced bounds
(~22 per decade, at most ~10 % apart) give percentiles for the windows, and
they include every bound of the coarser Prometheus histogram, which is summed
from them at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "FINE_BOUNDS",
    "PROM_BOUNDS",
    "WINDOW_SECONDS",
    "Series",
    "SeriesTable",
    "Window",
    "is_failure",
    "percentile",
    "window_span",
]

_MANTISSAS: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3, 1.4, 1.6, 1.8, 2.0, 2.2, 2.5, 2.8, 3.0)
_MANTISSAS += (3.3, 3.6, 4.0, 4.5, 5.0, 5.6, 6.3, 7.1, 8.0, 9.0)
FINE_BOUNDS: tuple[float, ...] = tuple(float(f"{m}e{e}") for e in range(-5, 3) for m in _MANTISSAS)
"""Upper bounds (seconds, ``le``) of the fine buckets: 10 µs .. 900 s; one more is +Inf."""

PROM_BOUNDS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""The buckets exported to Prometheus (a subset of `FINE_BOUNDS`)."""

WINDOW_SECONDS = 60
"""The longest sliding window, in seconds (a series keeps as many seconds' marks)."""

_NBUCKETS = len(FINE_BOUNDS) + 1
_FINE_TO_PROM = tuple(bisect_left(PROM_BOUNDS, b) for b in (*FINE_BOUNDS, float("inf")))


def is_failure(status: int) -> bool:
    """Linkerd's default classification: a 5xx answer (or none at all) is a failure."""
    return status >= 500


class Series:
    """Totals and the last minute of one (peer, route) edge in one direction.

    The windows are differences of totals: at the first request of each
    second, the totals as they were before it (requests, failures, the
    histogram) are kept as that second's mark, for the last `WINDOW_SECONDS`
    seconds that had requests. The last ``n`` seconds are the totals now
    minus the mark of the first second in them that had requests. A request
    costs one comparison of seconds; the copying is once per second.
    """

    __slots__ = (
        "_marks",
        "_sec",
        "bytes_in",
        "bytes_out",
        "errors",
        "hist",
        "inflight",
        "peer",
        "retries",
        "route",
        "statuses",
        "sum",
    )

    def __init__(self, peer: str, route: str) -> None:
        self.peer = peer
        self.route = route
        self.statuses: dict[int, int] = {}
        self.hist = [0] * _NBUCKETS
        self.sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.retries = 0
        self.inflight = 0
        self.errors: dict[str, int] = {}
        self._sec = -1  # the second of the last request counted
        self._marks: deque[tuple[int, int, int, list[int]]] = deque(maxlen=WINDOW_SECONDS)

    def add(self, status: int, duration: float, nin: int, nout: int, now: float) -> None:
        """Count one finished request (the hot path: integers and list slots only)."""
        sec = int(now)
        if sec > self._sec:
            self._mark(sec)
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.hist[bisect_left(FINE_BOUNDS, duration)] += 1
        self.sum += duration
        self.bytes_in += nin
        self.bytes_out += nout

    def _mark(self, sec: int) -> None:
        """The first request of second ``sec``: keep the totals it starts from."""
        self._sec = sec
        self._marks.append((sec, self.requests, self.failures, self.hist.copy()))

    def error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if is_failure(status))

    def prom_buckets(self) -> list[int]:
        """Cumulative counts per `PROM_BOUNDS` bound, then +Inf (Prometheus ``le``)."""
        counts = [0] * (len(PROM_BOUNDS) + 1)
        for index, n in enumerate(self.hist):
            if n:
                counts[_FINE_TO_PROM[index]] += n
        total = 0
        for index, n in enumerate(counts):
            total += n
            counts[index] = total
        return counts

    def window(self, seconds: int, now: float, since: float | None = None) -> Window:
        """The last ``seconds`` (the current, partial second included).

        ``since``: when counting started (the instance's start, same clock);
        a window longer than that spans only the time since (`window_span`).
        """
        sec = int(now)
        out = Window(seconds, span=window_span(seconds, now, since))
        first = sec - seconds + 1  # the window's first second
        for mark, requests, failures, hist in self._marks:
            if mark >= first:  # the first second in the window with requests: from here on
                out.merge(
                    self.requests - requests,
                    self.failures - failures,
                    [n - before for n, before in zip(self.hist, hist, strict=True)],
                )
                break
        return out


class Window:
    """Requests, failures and latencies over a sliding window; merges across series."""

    __slots__ = ("failures", "hist", "requests", "seconds", "span")

    def __init__(self, seconds: int, span: float) -> None:
        self.seconds = seconds
        self.span = max(span, 1e-9)
        self.requests = 0
        self.failures = 0
        self.hist = [0] * _NBUCKETS

    def merge(self, requests: int, failures: int, hist: Sequence[int]) -> None:
        self.requests += requests
        self.failures += failures
        for index, n in enumerate(hist):
            if n:
                self.hist[index] += n

    def add(self, other: Window) -> None:
        self.merge(other.requests, other.failures, other.hist)

    def summary(self) -> dict[str, object]:
        """RED figures: rps, success rate, p50/p95/p99 in ms, and the sparse histogram."""
        ok = self.requests - self.failures
        return {
            "requests": self.requests,
            "failures": self.failures,
            "rps": round(self.requests / self.span, 3),
            "success_rate": round(ok / self.requests, 4) if self.requests else None,
            "p50_ms": _ms(percentile(self.hist, 50)),
            "p95_ms": _ms(percentile(self.hist, 95)),
            "p99_ms": _ms(percentile(self.hist, 99)),
            "hist": [[i, n] for i, n in enumerate(self.hist) if n],
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The ``q``-th percentile (seconds) of a fine histogram, interpolated in its bucket."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q / 100 * total
    seen = 0
    for index, n in enumerate(hist):
        if n and seen + n >= rank:
            low = FINE_BOUNDS[index - 1] if index > 0 else 0.0
            high = FINE_BOUNDS[index] if index < len(FINE_BOUNDS) else FINE_BOUNDS[-1]
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return FINE_BOUNDS[-1]  # pragma: no cover - unreachable: rank <= total


class SeriesTable:
    """The series of one direction by (peer, route), bounded in number.

    Peers and routes come from request headers; past ``limit`` series, new
    ones are folded into ``("other", "other")`` so a misbehaving caller cannot
    grow memory or the scrape without bound.
    """

    __slots__ = ("_series", "direction", "limit")

    def __init__(self, direction: str, limit: int = 1000) -> None:
        self.direction = direction
        self.limit = limit
        self._series: dict[tuple[str, str], Series] = {}

    def get(self, peer: str, route: str) -> Series:
        key = (peer, route)
        found = self._series.get(key)
        if found is None:
            if len(self._series) >= self.limit:
                key = ("other", "other")
                found = self._series.get(key)
            if found is None:
                found = self._series[key] = Series(*key)
        return found

    def __iter__(self) -> Iterator[Series]:
        return iter(list(self._series.values()))

    def __len__(self) -> int:
        return len(self._series)


def merged(
    series: Iterable[Series], seconds: int, now: float, since: float | None = None
) -> Window:
    """One window over many series (an instance's peers, a block's routes)."""
    out = Window(seconds, span=window_span(seconds, now, since))
    for one in series:
        out.add(one.window(seconds, now, since))
    return out


def window_span(seconds: int, now: float, since: float | None = None) -> float:
    """How long the last ``seconds`` at ``now`` cover, the divisor of their rps.

    The window's full seconds and the elapsed part of the current one, and,
    when counting started at ``since`` (an instance's start), no longer than
    the time since then, at least a second: an instance up 25.9 s that served
    21 requests did 21/25.9 a second, not 21/60. A window the instance has
    lived through whole is unchanged.
    """
    span = min(float(seconds), seconds - 1 + (now - int(now)))
    if since is not None:
        span = min(span, max(now - since, 1.0))
    return span
