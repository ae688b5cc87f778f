"""Prometheus metrics. With several worker processes set PROMETHEUS_MULTIPROC_DIR and
every process writes there; /metrics then aggregates them."""

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

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


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
