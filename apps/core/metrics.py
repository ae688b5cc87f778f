"""Prometheus metrics. With several worker processes set PROMETHEUS_MULTIPROC_DIR and
every process writes there; /metrics then aggregates them."""

import os
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("aka_gateway_requests_total", "Gateway requests by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram(
    "aka_gateway_latency_seconds",
    "Gateway request latency",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AUTH_FAILURES = Counter("aka_auth_failures_total", "Rejected API keys by reason", ["reason"])
CACHE = Counter("aka_cache_lookups_total", "Cache lookups by outcome", ["outcome"])
RATE_LIMITED = Counter("aka_rate_limited_total", "Requests refused by a rate limit", ["scope"])
# Something the gateway depends on failed and it carried on without it (Redis for rate limits).
DEGRADED = Counter("aka_degraded_total", "Requests served without a failing dependency", ["component"])
UNHANDLED = Counter("aka_unhandled_errors_total", "Requests that hit an unexpected exception", ["endpoint"])
# Ledger rows the database refused or could not take, kept in the local spool for replay.
LEDGER_SPOOLED = Counter("aka_ledger_spooled_total", "Ledger rows written to the local spool", ["reason"])
LEDGER_REPLAYED = Counter("aka_ledger_replayed_total", "Spooled ledger rows replayed into the database")
# Billing: meter events by outcome, days where Stripe's meter and our ledger disagree,
# calls refused for billing reasons (suspended, monthly quota).
METER_EVENTS = Counter("aka_meter_events_total", "Meter events sent to Stripe by outcome", ["outcome"])
BILLING_DISCREPANCIES = Counter("aka_billing_discrepancies_total", "Days where Stripe's meter differs from the ledger")
BILLING_REFUSED = Counter("aka_billing_refused_total", "Calls refused by billing", ["reason"])
# Which model answered a call the upstream served (not the cache), and whether it was a
# fallback rather than the model the call resolved to; one label value per catalog model.
SERVED = Counter("aka_gateway_served_total", "Calls answered by an upstream model", ["model", "fallback"])
# Every failed upstream attempt, retried or not, by provider and kind (apps.providers.errors).
UPSTREAM_ERRORS = Counter("aka_upstream_errors_total", "Failed upstream attempts", ["provider", "kind"])


class _AtScrape:
    """Gauges read when Prometheus scrapes (queue lengths, backlogs): cheap reads, so
    nothing has to keep them current, and correct with any number of workers."""

    def __init__(self) -> None:
        self.readers: list[Callable[[], Iterable[GaugeMetricFamily]]] = []

    def collect(self):
        for reader in self.readers:
            try:
                yield from reader()
            except Exception:  # a source that cannot be read is left out of this scrape
                continue


_at_scrape = _AtScrape()
REGISTRY.register(_at_scrape)


def at_scrape(reader: Callable[[], Iterable[GaugeMetricFamily]]) -> Callable:
    """Registers `reader`, which yields gauge families, to run at every scrape."""
    _at_scrape.readers.append(reader)
    return reader


@at_scrape
def _celery_queue_length():
    from django.conf import settings

    from .redis import sync_client

    queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    gauge = GaugeMetricFamily("aka_celery_queue_length", "Tasks waiting in the Celery queue", labels=["queue"])
    gauge.add_metric([queue], sync_client().llen(queue))
    yield gauge


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_at_scrape)
        return generate_latest(registry)
    return generate_latest()
