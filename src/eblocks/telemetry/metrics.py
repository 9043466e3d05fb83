"""Prometheus exposition of one instance's telemetry (``GET /metrics`` on the admin port).

The request series are plain counters (`series.py`); this collector turns
them into metric families at scrape time, next to prometheus-client's process
collector (CPU seconds, resident memory, open fds) and the gauges components
registered through `Hooks`. Names and labels::

    eblocks_requests_total{direction,src_block,dst_block,route,status_code,classification}
    eblocks_request_duration_seconds_bucket{direction,src_block,dst_block,route,le}
    eblocks_request_bytes_total / eblocks_response_bytes_total{direction,src_block,dst_block,route}
    eblocks_request_errors_total{direction,src_block,dst_block,reason}
    eblocks_retries_total{src_block,dst_block,route}
    eblocks_policy_denials_total{block,reason,rule}      (rate_limited, overloaded, fault_injected)
    eblocks_fault_delays_total{block,rule}
    eblocks_requests_in_flight{direction,src_block,dst_block,route}
    eblocks_access_log_dropped_total, eblocks_tap_dropped_total, eblocks_tap_subscribers
    eblocks_build_info{version,block,instance_id}
    eblocks_gossip_members{status}, eblocks_pattern_*{pattern}   (hooks)
    eblocks_route_requests_total{route,destination}             (hooks, layers/route.py)
    eblocks_mirror_requests_total{route,outcome}                (hooks, layers/mirror.py)
    eblocks_retry_budget_exhausted_total{src_block,dst_block}     (hooks, eblocks.layers.meter)
    eblocks_outlier_ejections_total{src_block,dst_block}
    eblocks_endpoint_breaker_state{src_block,dst_block,endpoint,state}
    eblocks_policy_version, eblocks_policy_swaps_total, eblocks_policy_bundles_refused_total{reason}
    process_*                                                   (prometheus-client)

``classification`` is Linkerd's: ``failure`` for a 5xx answer, else ``success``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from importlib import metadata

from aiohttp import web
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from eblocks.telemetry.core import Telemetry
from eblocks.telemetry.series import PROM_BOUNDS, Series, SeriesTable, is_failure

__all__ = ["MeshCollector", "metrics_handler", "registry_for"]

_EDGE = ("direction", "src_block", "dst_block", "route")
_LE = (*(repr(b) for b in PROM_BOUNDS), "+Inf")


def _version() -> str:
    try:
        return metadata.version("eblocks")
    except metadata.PackageNotFoundError:
        return "unknown"


class MeshCollector(Collector):
    """Metric families built from a `Telemetry` at each scrape."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._tel = telemetry
        self._version = _version()

    def collect(self) -> Iterator[Metric]:
        tel = self._tel
        requests = CounterMetricFamily(
            "eblocks_requests",
            "Requests by direction, edge, route, status code and classification",
            labels=(*_EDGE, "status_code", "classification"),
        )
        latency = HistogramMetricFamily(
            "eblocks_request_duration_seconds",
            "Request latency in seconds, from request to response headers",
            labels=_EDGE,
        )
        bytes_in = CounterMetricFamily("eblocks_request_bytes", "Request body bytes", labels=_EDGE)
        bytes_out = CounterMetricFamily(
            "eblocks_response_bytes", "Response body bytes", labels=_EDGE
        )
        errors = CounterMetricFamily(
            "eblocks_request_errors",
            "Failed or refused requests by the mesh's reason (timeout, overloaded, ...)",
            labels=("direction", "src_block", "dst_block", "reason"),
        )
        retries = CounterMetricFamily(
            "eblocks_retries",
            "Outbound tries after the first",
            labels=("src_block", "dst_block", "route"),
        )
        inflight = GaugeMetricFamily(
            "eblocks_requests_in_flight", "Requests being handled or awaited now", labels=_EDGE
        )
        for table in (tel.inbound, tel.outbound):
            for series in table:
                edge = self._edge(tel.block, table, series)
                for status, count in sorted(series.statuses.items()):
                    outcome = "failure" if is_failure(status) else "success"
                    requests.add_metric((*edge, str(status), outcome), count)
                cumulative = series.prom_buckets()
                latency.add_metric(edge, list(zip(_LE, cumulative, strict=True)), series.sum)
                bytes_in.add_metric(edge, series.bytes_in)
                bytes_out.add_metric(edge, series.bytes_out)
                inflight.add_metric(edge, series.inflight)
                for reason, count in sorted(series.errors.items()):
                    errors.add_metric((*edge[:3], reason), count)
                if table is tel.outbound:
                    retries.add_metric(edge[1:], series.retries)
        yield from (requests, latency, bytes_in, bytes_out, errors, retries, inflight)
        yield from self._policies(tel)
        yield from self._own(tel)
        yield from self._hooks(tel)

    @staticmethod
    def _edge(block: str, table: SeriesTable, series: Series) -> tuple[str, str, str, str]:
        if table.direction == "inbound":
            return ("inbound", series.peer, block, series.route)
        return ("outbound", block, series.peer, series.route)

    @staticmethod
    def _policies(tel: Telemetry) -> Iterable[Metric]:
        denials = CounterMetricFamily(
            "eblocks_policy_denials",
            "Requests the block's own policies refused, by reason and rule",
            labels=("block", "reason", "rule"),
        )
        delays = CounterMetricFamily(
            "eblocks_fault_delays",
            "Requests a fault rule delayed, by rule",
            labels=("block", "rule"),
        )
        for (reason, rule), count in sorted(tel.policy_events.items()):
            if reason == "fault_delayed":
                delays.add_metric((tel.block, rule), count)
            else:
                denials.add_metric((tel.block, reason, rule), count)
        return (denials, delays)

    def _own(self, tel: Telemetry) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "eblocks_build_info",
            "Always 1: the Eblocks version, block and instance of this process",
            labels=("version", "block", "instance_id"),
        )
        info.add_metric((self._version, tel.block, tel.instance), 1)
        dropped_log = CounterMetricFamily(
            "eblocks_access_log_dropped", "Access log lines dropped because the writer lagged"
        )
        dropped_log.add_metric((), tel.access_log.dropped if tel.access_log else 0)
        dropped_tap = CounterMetricFamily(
            "eblocks_tap_dropped", "Tap summaries dropped because a subscriber lagged"
        )
        dropped_tap.add_metric((), tel.tap.dropped)
        subscribers = GaugeMetricFamily(
            "eblocks_tap_subscribers", "Readers of /v1/tap connected now"
        )
        subscribers.add_metric((), tel.tap.subscribers)
        return (info, dropped_log, dropped_tap, subscribers)

    @staticmethod
    def _hooks(tel: Telemetry) -> Iterable[Metric]:
        for hook in tel.hooks.gauges():
            family: GaugeMetricFamily | CounterMetricFamily
            if hook.counter:
                family = CounterMetricFamily(hook.name, hook.doc, labels=hook.labels)
            else:
                family = GaugeMetricFamily(hook.name, hook.doc, labels=hook.labels)
            for labels, value in hook.read():
                family.add_metric(tuple(labels), value)
            yield family


def registry_for(telemetry: Telemetry) -> CollectorRegistry:
    """A registry of its own per instance (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MeshCollector(telemetry))
    ProcessCollector(registry=registry)
    return registry


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def metrics(request: web.Request) -> web.Response:
        # the text format 0.0.4 unless the scraper asks for OpenMetrics
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return web.Response(body=encode(registry), headers={"content-type": content_type})

    return metrics
