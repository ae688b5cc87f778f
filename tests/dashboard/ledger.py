"""Ledger rows for dashboard tests, written straight into billing_callrecord with
realistic, varied values (the gateway's own rows are tested in tests/gateway)."""

import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from apps.billing.models import CallRecord

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5"]


def calls(tenant, *, n: int, start: datetime, span: timedelta, seed: int = 1, api_key=None,
          prompt: str | None = None) -> list[CallRecord]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        cache = rng.choice(["miss", "miss", "exact", "semantic", "off"])
        status = 200 if rng.random() > 0.1 else rng.choice([429, 502])
        hit = cache in ("exact", "semantic")
        model = rng.choice(MODELS)
        tokens_in, tokens_out = rng.randint(10, 400), rng.randint(5, 300)
        provider = Decimal(0) if hit else Decimal(tokens_in * 150 + tokens_out * 600) / 1000
        outcome = rng.choice(["", "", "accepted", "rejected"]) if not hit else ""
        rows.append(CallRecord(
            tenant=tenant, request_id=f"req_{uuid.uuid4().hex[:24]}", api_key=api_key, endpoint="chat.completions",
            model_requested="auto" if outcome else model, model_served=model, provider="openai",
            prompt_tokens=0 if hit else tokens_in, completion_tokens=0 if hit else tokens_out,
            provider_cost_micros=provider,
            counterfactual_cost_micros=Decimal(tokens_in * 2500 + tokens_out * 10000) / 1000 if status == 200 else 0,
            baseline_model="gpt-4o", price_cents=10 if status == 200 else 0, billable=status == 200,
            status_code=status, cache=cache, cache_similarity=round(rng.uniform(0.9, 0.99), 4) if cache == "semantic"
            else (1.0 if cache == "exact" else None),
            route="cheap" if outcome else "", speculation="cascade" if outcome else "", speculation_outcome=outcome,
            latency_ms=round(rng.lognormvariate(6, 0.8), 2), ttft_ms=None, prompt=prompt,
            created_at=start + span * (i / max(n, 1))))
    return CallRecord.objects.for_tenant(tenant).bulk_create(rows)
