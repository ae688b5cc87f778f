"""Synthetic ledger history for demos and benchmarks: realistic calls written straight
into billing_callrecord with COPY (the demo's recent calls go through the real gateway).

Values follow the shape of real traffic: more calls in working hours and on weekdays;
about 12% exact and 25% semantic cache hits; misses routed to a cheap model (70%, with a
cascade whose draft is accepted 85% of the time) or a strong one; 3% failures; lognormal
token counts and latencies. Costs use the catalog's list prices (USD per 1M tokens), and
the counterfactual is the baseline model's price for the same tokens.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from django.db import connection, transaction

# (model, provider, input, output USD per 1M tokens): the seed catalog's prices.
CHEAP = ("gpt-4o-mini", "openai", 0.15, 0.6)
MIDDLE = ("claude-haiku-4-5", "anthropic", 1.0, 5.0)
STRONG = ("gpt-4o", "openai", 2.5, 10.0)
BASELINE_PRICES = {"gpt-4o": (2.5, 10.0), "claude-sonnet-4-5": (3.0, 15.0), "gpt-4.1": (2.0, 8.0)}

COLUMNS = ("tenant_id, request_id, api_key_id, endpoint, model_requested, model_served, provider, stream, "
           "prompt_tokens, completion_tokens, provider_cost_micros, counterfactual_cost_micros, baseline_model, "
           "price_cents, billable, status_code, error_type, cache, cache_similarity, cache_entry_id, route, "
           "route_reason, predicted_quality, speculation, speculation_outcome, judge, judge_score, draft_cost_micros, "
           "strong_cost_micros, judge_cost_micros, attempts, latency_ms, ttft_ms, prompt, created_at")
CHUNK = 20_000
NULL = r"\N"


def _times(rng, n: int, start: datetime, end: datetime) -> np.ndarray:
    """n sorted epoch seconds in [start, end), denser in working hours and on weekdays."""
    first, last = start.timestamp(), end.timestamp()
    hours = np.arange(int(first // 3600), int(np.ceil(last / 3600)))
    local = hours % 24
    weekday = ((hours // 24) + 3) % 7 < 5          # 1970-01-01 was a Thursday
    weight = (1.0 + 0.8 * np.sin((local - 9) / 24 * 2 * np.pi).clip(min=-0.6)) * np.where(weekday, 1.0, 0.55)
    picked = rng.choice(hours, size=n, p=weight / weight.sum())
    seconds = picked * 3600.0 + rng.random(n) * 3600.0
    return np.sort(seconds.clip(first, last - 0.001))


def _cost(tokens_in, tokens_out, prices) -> np.ndarray:
    return np.round(tokens_in * prices[0] + tokens_out * prices[1], 4)   # micro-dollars


def ledger_history(*, tenant_id: int, calls: int, start: datetime, end: datetime, api_key_ids: list[str],
                   baseline_model: str = "gpt-4o", price_cents: int = 10, seed: int = 0,
                   progress: Callable[[int], None] | None = None) -> int:
    """Writes `calls` ledger rows of one tenant between start and end with COPY, in one
    transaction. Returns the number written."""
    rng = np.random.default_rng(seed)
    baseline = BASELINE_PRICES.get(baseline_model, BASELINE_PRICES["gpt-4o"])
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: COPY
        times = _times(rng, calls, start, end)
        for lo in range(0, calls, CHUNK):
            n = min(CHUNK, calls - lo)
            with raw.copy(f"COPY billing_callrecord ({COLUMNS}) FROM STDIN") as copy:
                copy.write(_chunk(rng, n, times[lo:lo + n], tenant_id, api_key_ids, baseline_model, baseline,
                                  price_cents))
            written += n
            if progress:
                progress(n)
    return written


def _chunk(rng, n, times, tenant_id, api_key_ids, baseline_model, baseline, price_cents) -> str:
    kind = rng.choice(["exact", "semantic", "miss", "off"], size=n, p=[0.12, 0.25, 0.60, 0.03])
    failed = rng.random(n) < 0.03
    status = np.where(failed, rng.choice([502, 429, 504], size=n), 200)
    kind = np.where(failed, "miss", kind)
    hit = np.isin(kind, ["exact", "semantic"])
    tokens_in = np.maximum(rng.lognormal(5.5, 0.7, n).astype(int), 8)
    tokens_out = np.maximum(rng.lognormal(4.8, 0.8, n).astype(int), 1)
    strong_route = rng.random(n) < 0.3
    accepted = rng.random(n) < 0.85
    middle = rng.random(n) < 0.25
    latency = np.where(hit, rng.lognormal(3.2, 0.4, n), rng.lognormal(6.4, 0.6, n)).round(2)
    stream = rng.random(n) < 0.4
    similarity = rng.uniform(0.90, 0.995, n).round(4)
    keys = rng.choice(api_key_ids, size=n) if api_key_ids else [None] * n
    lines = []
    for i in range(n):
        t_in, t_out = int(tokens_in[i]), int(tokens_out[i])
        counterfactual = 0.0 if failed[i] else _cost(t_in, t_out, baseline)
        route = reason = speculation = outcome = judge = ""
        draft = strong = judge_cost = 0.0
        quality = score = NULL
        if hit[i]:
            model, provider = (CHEAP if not middle[i] else MIDDLE)[:2]
            provider_cost, p_in, p_out = 0.0, 0, 0
        elif strong_route[i]:
            model, provider = STRONG[:2]
            route, reason = "strong", "predicted quality below the floor"
            quality = f"{rng.uniform(0.3, 0.8):.3f}"
            provider_cost = strong = _cost(t_in, t_out, STRONG[2:])
            p_in, p_out = t_in, t_out
        else:
            cheap = MIDDLE if middle[i] else CHEAP
            route, reason, speculation, judge = "cheap", "predicted quality meets the floor", "cascade", "heuristic"
            quality = f"{rng.uniform(0.8, 0.99):.3f}"
            draft = _cost(t_in, t_out, cheap[2:])
            judge_cost = round(draft * 0.05, 4)
            outcome = "accepted" if accepted[i] else "rejected"
            score = f"{rng.uniform(0.7, 1.0) if accepted[i] else rng.uniform(0.0, 0.5):.3f}"
            if accepted[i]:
                model, provider = cheap[:2]
            else:
                model, provider = STRONG[:2]
                strong = _cost(t_in, t_out, STRONG[2:])
            provider_cost = round(draft + strong + judge_cost, 4)
            p_in, p_out = t_in, t_out
        ok = status[i] == 200
        ttft = f"{latency[i] * 0.35:.2f}" if stream[i] else NULL
        lines.append("\t".join((
            str(tenant_id), "req_" + uuid.uuid4().hex[:24], keys[i] or NULL, "chat.completions",
            "auto" if route else model, model, provider, "t" if stream[i] else "f", str(p_in), str(p_out),
            f"{provider_cost:.4f}", f"{counterfactual:.4f}", baseline_model, str(price_cents if ok else 0),
            "t" if ok else "f", str(int(status[i])), "" if ok else "upstream_error", str(kind[i]),
            f"{similarity[i]}" if kind[i] == "semantic" else ("1.0" if kind[i] == "exact" else NULL), NULL,
            route, reason, quality, speculation, outcome, judge, score, f"{draft:.4f}", f"{strong:.4f}",
            f"{judge_cost:.4f}", "1" if ok else "3", f"{latency[i]}", ttft, NULL,
            datetime.fromtimestamp(times[i], UTC).isoformat())))
    return "\n".join(lines) + "\n"
