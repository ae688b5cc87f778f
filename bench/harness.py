"""What bench/routing and bench/savings share: Django set up on the bench's own database,
fresh tenants with a key and no rate limit, the router's settings when the router is
there, calls through the real gateway with their client-side latency, feedback, the
simulator's verdicts, the ledger rows of a set of calls, and the figures' arithmetic.

ORM work runs between the asyncio phases (Django refuses it inside an event loop)."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")

import django  # noqa: E402

django.setup()

from apps.billing.models import CallRecord  # noqa: E402
from apps.providers.catalog import sync_from_seed  # noqa: E402
from apps.tenants import services as tenants  # noqa: E402

sync_from_seed()  # the catalog as the seed file has it, models added since the last migration included


def make_tenant(prefix: str):
    """A fresh tenant (so a fresh router memory) with one key and no rate limit."""
    slug = f"{prefix}-{time.time_ns() % 10**12}"
    tenant, owner = tenants.tenant_create(name=slug, owner_email=f"{slug}@bench.local", owner_password=None,
                                          plan_name="Scale", slug=slug)
    tenants.tenant_set_rate_limits(tenant=tenant, rpm=0, key_rpm=0)
    _, raw = tenants.api_key_issue(tenant=tenant, name="bench", created_by=owner)
    return tenant, raw


def router_settings():
    """`routing_settings_update(*, tenant, **changes)` when the router has landed, else None."""
    try:
        from apps.routing.services import routing_settings_update
    except ImportError:
        return None
    return routing_settings_update


@dataclass
class Reply:
    status: int
    model: str          # x-aka-model: the model whose answer was served
    route: str          # x-aka-route ("" when the gateway has no router)
    cache: str          # x-aka-cache
    cost_usd: float     # x-aka-cost-usd
    request_id: str
    latency_ms: float   # client side, request sent to last byte read
    text: str


class Gateway:
    def __init__(self, url: str, sim_url: str, concurrency: int) -> None:
        self.url, self.sim_url = url, sim_url
        self.slots = asyncio.Semaphore(concurrency)
        # Idle connections are dropped well before uvicorn's 5 s keep-alive ends, so a reused
        # connection is never one the server is closing.
        self.http = httpx.AsyncClient(timeout=120, limits=httpx.Limits(
            max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8, keepalive_expiry=1.0))

    async def close(self) -> None:
        await self.http.aclose()

    async def chat(self, key: str, body: dict, headers: dict | None = None) -> Reply:
        started = time.perf_counter()
        try:
            r = await self.http.post(f"{self.url}/v1/chat/completions", json=body,
                                     headers={"authorization": f"Bearer {key}", **(headers or {})})
        except httpx.TransportError as exc:   # counted as a failed call, not the end of the bench
            return Reply(status=0, model="", route="", cache="", cost_usd=0.0, request_id="",
                         latency_ms=(time.perf_counter() - started) * 1000, text=type(exc).__name__)
        latency = (time.perf_counter() - started) * 1000
        text = ""
        if r.status_code == 200:
            text = r.json()["choices"][0]["message"]["content"] or ""
        return Reply(status=r.status_code, model=r.headers.get("x-aka-model", ""),
                     route=r.headers.get("x-aka-route", ""), cache=r.headers.get("x-aka-cache", ""),
                     cost_usd=float(r.headers.get("x-aka-cost-usd") or 0), request_id=r.headers.get("x-request-id", ""),
                     latency_ms=latency, text=text)

    async def feedback(self, key: str, request_id: str, good: bool) -> int:
        """Thumbs up or down; the call's ledger row lands just after its answer, so a 404
        is retried for a few seconds."""
        for _ in range(100):
            r = await self._post(f"{self.url}/v1/feedback", {"request_id": request_id, "thumbs": "up" if good else "down"},
                                 {"authorization": f"Bearer {key}"})
            if r.status_code != 404:
                return r.status_code
            await asyncio.sleep(0.05)
        return 404

    async def _post(self, url: str, body: dict, headers: dict | None = None) -> httpx.Response:
        """A POST that is safe to repeat (a verdict, feedback), retried when the connection drops."""
        for attempt in range(4):
            try:
                return await self.http.post(url, json=body, headers=headers)
            except httpx.TransportError:
                await asyncio.sleep(0.2 * (attempt + 1))
        return await self.http.post(url, json=body, headers=headers)

    async def verdict(self, model: str, prompt: str) -> bool | None:
        found = (await self._post(f"{self.sim_url}/_sim/verdict", {"model": model, "prompt": prompt})).json()
        return found["good"] if found["known"] else None

    async def each(self, items, work):
        """`work(item)` for every item, at most `concurrency` at a time, results in order."""
        async def one(item):
            async with self.slots:
                return await work(item)
        return await asyncio.gather(*(one(item) for item in items))


def ledger_rows(tenant, request_ids: list[str], timeout: float = 30.0) -> dict[str, dict]:
    """The ledger rows of these calls by request id, once all are written (or the timeout)."""
    wanted, deadline = set(request_ids), time.monotonic() + timeout
    while True:
        rows = {r["request_id"]: r for r in CallRecord.objects.for_tenant(tenant).filter(request_id__in=wanted).values(
            "request_id", "model_served", "provider_cost_micros", "counterfactual_cost_micros", "cache", "route",
            "speculation", "speculation_outcome", "judge_cost_micros", "draft_cost_micros", "strong_cost_micros",
            "cache_entry_id")}
        if len(rows) >= len(wanted) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """mean [min-max] over the runs (the mean alone for one run)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) == 1 or min(values) == max(values):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"
