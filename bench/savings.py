"""bench/savings: what the whole gateway (cache, router, speculation) saves on three
seed-shaped workloads, against sending every call to gpt-4o. QUALITY HERE IS SIMULATED.

    make bench-savings [ARGS="..."]      or
    python bench/savings.py [--calls 500] [--speculation cascade] [--pool gpt-4o-mini,gpt-4o] ...

Workloads (generated here, deterministically):
- support: Banking77 customer queries (../shared/data/banking77); popular intents and,
  within an intent, popular phrasings come up more often (Zipf), so some queries repeat
  word for word and many are paraphrases of earlier ones;
- content: writing briefs (format x topic x audience x tone), popular briefs again more
  often, each asked in one of three phrasings;
- code: coding tasks (task x language), the same way.
Each call goes to the real gateway as `model: "auto"` for a fresh tenant per workload
(cache on, its default settings; the router's pool and speculation mode as given), and
a share of calls gets the client's thumbs up or down. The same calls are also sent to
gpt-4o by name with the cache off: the all-gpt-4o baseline (its cost, latency, quality).

Quality is simulated: the simulator gives each model a skill per task kind
(simulator/skills.py), learns each prompt's kind from this bench through /_sim/tasks
(the gateway never sees it) and says on the side whether an answer was good. A cache hit
is good when the cached answer was good for its own prompt and that prompt asked the
same thing (same Banking77 intent; same brief or task).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass

import httpx
from django.db import connection
from harness import ROOT, Gateway, ledger_rows, make_tenant, percentile, router_settings

from apps.providers.catalog import seed_rows  # harness (above) set Django up
from tests.live import start_gateway, start_simulator

BANKING77 = ROOT.parent / "shared" / "data" / "banking77"
CLAIMS = {"support": "20x", "content": "16.7x", "code": "18.2x"}
CLAIMED_LATENCY = "280-450 ms"
BASELINE = "gpt-4o"
# Popularity (Zipf exponent) of what is asked: support questions crowd on a few intents
# and phrasings; writing and coding requests have a longer tail.
ZIPF_S = {"support": 1.0, "content": 0.6, "code": 0.6}
SYSTEM = {
    "support": "You are the support assistant of an online bank. Answer briefly and accurately.",
    "content": "You are a marketing copywriter. Follow the brief.",
    "code": "You are a senior software engineer. Answer with working code and a short explanation.",
}


@dataclass(frozen=True)
class Call:
    prompt: str
    group: str   # what the prompt asks: two prompts of one group may share an answer


def zipf_pick(rng: random.Random, items: list, s: float):
    weights = [1 / (rank + 1) ** s for rank in range(len(items))]
    return rng.choices(items, weights=weights, k=1)[0]


def support_calls(n: int) -> list[Call]:
    by_intent: dict[str, list[str]] = {}
    for name in ("train.csv", "test.csv"):
        with (BANKING77 / name).open(newline="") as f:
            for row in csv.DictReader(f):
                by_intent.setdefault(row["category"], []).append(row["text"].strip())
    rng = random.Random("support")
    intents = sorted(by_intent)
    rng.shuffle(intents)
    for texts in by_intent.values():
        rng.shuffle(texts)
    calls = []
    for _ in range(n):
        intent = zipf_pick(rng, intents, ZIPF_S["support"])
        calls.append(Call(zipf_pick(rng, by_intent[intent], ZIPF_S["support"]), intent))
    return calls


FORMATS = ["a 300-word blog post", "a product description", "a newsletter introduction", "a LinkedIn post",
           "five email subject lines", "a landing page hero section"]
TOPICS = ["our new budgeting app", "remote team onboarding", "a spring sale on running shoes", "cyber security tips for"
          " small businesses", "the launch of a vegan meal kit", "an electric cargo bike", "a yoga studio opening",
          "cloud cost savings", "a travel insurance plan", "a coffee subscription", "a home solar battery",
          "a language learning course"]
AUDIENCES = ["busy parents", "startup founders", "university students", "retirees"]
TONES = ["friendly", "professional", "playful"]
CONTENT_PHRASINGS = ["Write {fmt} about {topic} for {audience}, in a {tone} tone.",
                     "Please draft {fmt} on {topic}. Audience: {audience}. Tone: {tone}.",
                     "I need {fmt} about {topic}, aimed at {audience}; keep it {tone}."]

TASKS = ["reverses a linked list", "checks whether a string is a palindrome", "merges two sorted lists",
         "parses an ISO 8601 date", "deduplicates a list while keeping order", "computes a moving average",
         "validates an email address", "flattens a nested list", "counts word frequencies in a text",
         "finds the longest common prefix of strings", "retries an HTTP request with exponential backoff",
         "converts a CSV file to JSON", "implements binary search", "groups records by a key",
         "computes the Levenshtein distance", "chunks a list into batches of n"]
LANGUAGES = ["Python", "TypeScript", "Go", "Java"]
EXTRAS = ["", " Add type annotations.", " Do not use external libraries.", " It must handle empty input.",
          " Include a docstring and one example."]
CODE_PHRASINGS = ["Write a {lang} function that {task}.{extra}", "How do I write a function in {lang} that {task}?{extra}",
                  "Implement in {lang}: a function that {task}, with a short test.{extra}"]


def brief_calls(n: int, kind: str) -> list[Call]:
    rng = random.Random(kind)
    if kind == "content":
        briefs = [dict(fmt=f, topic=t, audience=a, tone=o) for f in FORMATS for t in TOPICS for a in AUDIENCES
                  for o in TONES]
        phrasings = CONTENT_PHRASINGS
    else:
        briefs = [dict(task=t, lang=lang, extra=e) for t in TASKS for lang in LANGUAGES for e in EXTRAS]
        phrasings = CODE_PHRASINGS
    rng.shuffle(briefs)
    calls = []
    for _ in range(n):
        brief = zipf_pick(rng, briefs, ZIPF_S[kind])
        calls.append(Call(rng.choice(phrasings).format(**brief), repr(sorted(brief.items()))))
    return calls


def body(kind: str, call: Call, model: str) -> dict:
    return {"model": model, "max_tokens": 1024,
            "messages": [{"role": "system", "content": SYSTEM[kind]}, {"role": "user", "content": call.prompt}]}


@dataclass
class Figures:
    calls: int
    cost: float
    quality: float
    hit_rate: float
    p50: float
    p95: float
    errors: int
    models: Counter
    outcomes: Counter


def cache_entries(tenant, ids: list[int]) -> dict[int, tuple[str, str]]:
    """entry id -> (the prompt it was stored for, the model whose answer it holds)."""
    if not ids:
        return {}
    with connection.cursor() as cur:
        cur.execute("SELECT id, prompt_text, model FROM cache_entry WHERE tenant_id = %s AND id = ANY(%s)",
                    [tenant.pk, ids])
        return {row[0]: (row[1], row[2]) for row in cur.fetchall()}


def measure(gw_url: str, sim_url: str, kind: str, calls: list[Call], *, model: str, cached: bool, args,
            configure=None) -> Figures:
    tenant, key = make_tenant(f"bench-savings-{kind}")
    if configure:
        configure(tenant)
    group_of = {c.prompt.strip(): c.group for c in calls}
    feedback_rng = random.Random(f"feedback-{kind}")
    give_feedback = [cached and feedback_rng.random() < args.feedback for _ in calls]

    async def go():
        gw = Gateway(gw_url, sim_url, args.concurrency)

        async def one(i: int):
            call = calls[i]
            reply = await gw.chat(key, body(kind, call, model), None if cached else {"x-aka-cache": "off"})
            if reply.status == 200 and reply.cache not in ("exact", "semantic"):
                good = await gw.verdict(reply.model, call.prompt)
                if give_feedback[i] and good is not None:
                    await gw.feedback(key, reply.request_id, good)
            return reply
        try:
            # In arrival order, `concurrency` at a time: later repeats find earlier answers cached.
            return await gw.each(range(len(calls)), one)
        finally:
            await gw.close()
    replies = asyncio.run(go())
    ok = [(c, r) for c, r in zip(calls, replies, strict=True) if r.status == 200]
    ledger = ledger_rows(tenant, [r.request_id for _, r in ok])
    entries = cache_entries(tenant, [ledger[r.request_id]["cache_entry_id"] for _, r in ok
                                     if r.request_id in ledger and ledger[r.request_id]["cache_entry_id"]])

    async def verdicts():
        gw = Gateway(gw_url, sim_url, 16)
        try:
            async def judge(pair):
                call, reply = pair
                row = ledger.get(reply.request_id, {})
                if reply.cache in ("exact", "semantic"):
                    entry = entries.get(row.get("cache_entry_id"))
                    if entry is None or group_of.get(entry[0].strip()) != call.group:
                        return False   # an answer to another question
                    return await gw.verdict(entry[1], entry[0])
                return await gw.verdict(reply.model, call.prompt)
            return await gw.each(ok, judge)
        finally:
            await gw.close()
    goods = asyncio.run(verdicts())
    paid = sum(float(ledger[r.request_id]["provider_cost_micros"]) / 1e6 if r.request_id in ledger else r.cost_usd
               for _, r in ok)
    latencies = [r.latency_ms for _, r in ok]
    return Figures(
        calls=len(calls), cost=paid, quality=sum(bool(g) for g in goods) / max(len(ok), 1),
        hit_rate=sum(r.cache in ("exact", "semantic") for _, r in ok) / max(len(ok), 1),
        p50=percentile(latencies, 50), p95=percentile(latencies, 95), errors=len(calls) - len(ok),
        models=Counter("cache" if r.cache in ("exact", "semantic") else r.model for _, r in ok),
        outcomes=Counter(row["speculation_outcome"] or "-" for row in ledger.values()
                         if row["cache"] not in ("exact", "semantic")))


def assumptions(sim_url: str, args, pool: list[str], routed: bool) -> None:
    skills = httpx.get(f"{sim_url}/_sim/skills").json()
    catalog = {row["id"]: row for row in seed_rows()}
    print("ASSUMPTIONS (every one drives the figures):")
    print("- quality is SIMULATED: good-answer probability per model and task kind (simulator/skills.py):")
    for model in dict.fromkeys([*pool, BASELINE]):
        print(f"    {model:28} {skills['skills'].get(model)}")
    print(f"- a prompt's difficulty is shared by all models with probability {skills['shared_difficulty']} "
          f"(else each model draws its own); {skills['detectable_bad_share']:.0%} of bad answers show it "
          f"(refusal or cut short), the rest look like good ones")
    print(f"- answer lengths in tokens per kind: {skills['answer_tokens']}; prompts as generated (system prompt + one "
          f"user turn)")
    for model in dict.fromkeys([*pool, BASELINE]):
        row = catalog[model]
        print(f"- {model}: ${row['input_per_mtok']}/${row['output_per_mtok']} per 1M tokens in/out; simulated first "
              f"token {row['sim']['ttft_ms']} ms, {row['sim']['tokens_per_s']} tokens/s")
    print(f"- {args.calls} calls per workload, {args.concurrency} in flight, arrival order as generated; popularity "
          f"Zipf exponents {ZIPF_S} over intents and phrasings (support) or briefs (content, code: one of three "
          f"phrasings at random); Banking77 train+test texts")
    print(f"- client feedback (thumbs from the simulated verdict) on {args.feedback:.0%} of answered, non-cached calls")
    print("- cache: the tenant's defaults (on, threshold 0.90); all-gpt-4o runs with the cache off")
    if routed:
        print(f"- router: pool {pool}, speculation {args.speculation}, judge {args.judge}, quality floor "
              f"{args.quality_floor}, the router's default exploration")
    print("- a cache hit is good when the cached answer was good for its own prompt and that prompt asked the same"
          " thing (same Banking77 intent / same brief)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="calls per workload")
    parser.add_argument("--workloads", default="support,content,code")
    parser.add_argument("--pool", default="gpt-4o-mini,gpt-4o", help="router pool, cheapest first")
    parser.add_argument("--speculation", default="cascade", help="off | cascade | race | selective")
    parser.add_argument("--judge", default="heuristic")
    parser.add_argument("--quality-floor", type=float, default=0.95)
    parser.add_argument("--feedback", type=float, default=0.2, help="share of calls the client gives feedback on")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    pool = args.pool.split(",")
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    sim_url, stop_sim = start_simulator(fast=False)
    gw_url, stop_gw = start_gateway(simulator_url=sim_url, extra_env={"AKA_CATALOG_TTL": "1"})
    update = router_settings()
    try:
        print(f"bench/savings  {args.calls} calls per workload through the gateway (cache + router + speculation) "
              f"against the simulator; baseline: every call to {BASELINE}, no cache")
        if update is None:
            print("ROUTER NOT AVAILABLE (apps.routing.services.routing_settings_update does not exist in this build):"
                  " `auto` is served by the default model without routing or speculation; the 'gateway' figures"
                  " measure the cache plus that default model only, NOT the router.")
        assumptions(sim_url, args, pool, update is not None)
        print(f"\n{'workload':9} {'calls':>6} {'cost all-4o $':>14} {'cost paid $':>12} {'reduction':>10} "
              f"{'claimed':>8} {'quality vs 4o (sim)':>20} {'cache hits':>11} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'4o p50/p95 ms':>14} {'spec accept':>11}")
        details = []
        for kind in args.workloads.split(","):
            calls = support_calls(args.calls) if kind == "support" else brief_calls(args.calls, kind)
            httpx.post(f"{sim_url}/_sim/tasks", json={"tasks": {c.prompt: kind for c in calls}}).raise_for_status()
            base = measure(gw_url, sim_url, kind, calls, model=BASELINE, cached=False, args=args)

            def configure(tenant):
                if update is not None:
                    update(tenant=tenant, pool=pool, speculation=args.speculation, judge=args.judge,
                           quality_floor=args.quality_floor)
            ours = measure(gw_url, sim_url, kind, calls, model="auto", cached=True, args=args, configure=configure)
            reduction = base.cost / ours.cost if ours.cost else math.inf
            speculated = sum(n for outcome, n in ours.outcomes.items() if outcome != "-")
            accept = f"{ours.outcomes['accepted'] / speculated:.0%}" if speculated else "n/a"
            quality = ours.quality / base.quality if base.quality else math.nan
            print(f"{kind:9} {len(calls):>6} {base.cost:>14.4f} {ours.cost:>12.4f} {reduction:>9.1f}x "
                  f"{CLAIMS.get(kind, '-'):>8} {quality:>20.3f} {ours.hit_rate:>11.1%} {ours.p50:>8.0f} "
                  f"{ours.p95:>8.0f} {base.p50:>6.0f}/{base.p95:<7.0f} {accept:>11}")
            repeats = len(calls) - len({c.prompt for c in calls})
            details.append(f"  {kind}: share per model {dict(ours.models)}; speculation outcomes {dict(ours.outcomes)};"
                           f" good answers {ours.quality:.3f} (all-4o {base.quality:.3f}); word-for-word repeats in the"
                           f" workload {repeats / len(calls):.0%}; distinct groups {len({c.group for c in calls})};"
                           f" errors {ours.errors} (all-4o {base.errors})")
        print("\n".join(details))
        print(f"published claims: 20x support, 16.7x content, 18.2x code, at {CLAIMED_LATENCY}. Latency here is the "
              f"client's, request to last byte, non-streaming, at {args.concurrency} calls in flight.")
    finally:
        stop_gw()
        stop_sim()
    print(f"total {time.monotonic() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f} "
          f"(at the start {load_at_start:.1f}) on {os.cpu_count()} CPUs: latencies include queueing behind other work")


if __name__ == "__main__":
    main()
