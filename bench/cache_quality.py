"""bench/cache_quality: Banking77 replayed through the real gateway and simulator.

Warms one tenant's cache with the 10,003 training queries (`Cache-Control: no-cache`:
stored, never answered from the cache), then sends the 3,080 test
queries at each similarity threshold (`x-aka-cache: readonly`, so the cache stays the
training set). A hit is correct when the cached entry's intent equals the query's.
Prints hit rate and false-hit rate per threshold, the recommended default, and 20
sampled wrong hits to read by eye.

    make bench-cache-quality      (or: scripts/services.py run -- .venv/bin/python bench/cache_quality.py)
"""

import asyncio
import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import start_gateway, start_simulator  # noqa: E402

DATA = Path(os.environ.get("BANKING77", ROOT.parent / "shared" / "data" / "banking77"))
THRESHOLDS = [0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]
SYSTEM = "You are a customer-support agent for an online bank. Answer briefly."
QUOTE = re.compile(r'You asked: "(.*)"\. ', re.S)
CONCURRENCY = 16
TARGET_FALSE_HITS = 0.02


def rows(name: str) -> list[tuple[str, str]]:
    with (DATA / name).open() as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def manage(*args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def new_tenant() -> tuple[str, str, str]:
    slug = f"quality-{int(time.time())}"
    out = manage("create_tenant", "Cache quality", "--slug", slug, "--owner-email", f"{slug}@bench.local",
                 "--plan", "Scale", "--rate-limit", "0", "--key", "--key-scope", "admin")
    warm_key = re.search(r"aka_[\w-]{43}", out).group(0)
    test_key = re.search(r"aka_[\w-]{43}", manage("issue_key", slug, "--name", "test")).group(0)
    return slug, warm_key, test_key


async def replay(client: httpx.AsyncClient, key: str, texts: list[str], headers: dict) -> list[dict]:
    """Sends every text; returns per text the cache outcome and the cached prompt quoted."""
    results: list[dict] = [{}] * len(texts)
    queue = list(enumerate(texts))

    async def worker():
        while queue:
            i, text = queue.pop()
            response = await client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}", **headers},
                                         json={"model": "gpt-4o-mini", "messages": [
                                             {"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]})
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
            quoted = QUOTE.search(content)
            results[i] = {"cache": response.headers["x-aka-cache"], "cached_prompt": quoted.group(1) if quoted else "",
                          "similarity": float(response.headers.get("x-aka-cache-similarity", "nan"))}

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return results


def intent_of_cached(prompt: str, train_intents: dict[str, str]) -> str | None:
    if prompt in train_intents:
        return train_intents[prompt]
    # The simulator clips very long quotes with an ellipsis.
    stem = prompt.rstrip("…")
    return next((v for k, v in train_intents.items() if k.startswith(stem)), None)


async def main() -> None:
    train, test = rows("train.csv"), rows("test.csv")
    train_intents = {text: intent for text, intent in train}
    slug, warm_key, test_key = new_tenant()
    sim_url, stop_sim = start_simulator(fast=True)
    gw_url, stop_gw = start_gateway(simulator_url=sim_url)
    try:
        async with httpx.AsyncClient(base_url=gw_url, timeout=60,
                                     limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
            started = time.monotonic()
            # no-cache: every training query reaches the provider and is stored, none is
            # answered by an earlier one, so the cache is exactly the training set.
            await replay(client, warm_key, [t for t, _ in train], {"Cache-Control": "no-cache"})
            stats = {}
            for _ in range(100):  # entries are written just after each response
                stats = (await client.get("/api/cache/", headers={"authorization": f"Bearer {warm_key}"})).json()
                if stats["entries"] >= len(train_intents) - 5:
                    break
                await asyncio.sleep(0.2)
            print(f"bench/cache_quality  tenant={slug}  cache warmed with {stats['entries']} entries "
                  f"({len(train)} training queries, {time.monotonic() - started:.0f}s)\n")
            print(f"{'threshold':>9} {'hits':>6} {'hit rate':>9} {'wrong':>6} {'false-hit rate':>15}")
            table, wrong_at = [], {}
            for threshold in THRESHOLDS:
                await client.patch("/api/settings/", headers={"authorization": f"Bearer {warm_key}"},
                                   json={"cache_threshold": threshold})
                await asyncio.sleep(2.5)  # every process re-reads tenant settings within AKA_KEY_CACHE_TTL
                results = await replay(client, test_key, [t for t, _ in test], {"x-aka-cache": "readonly"})
                hits = [(q, r) for q, r in zip(test, results, strict=True) if r["cache"] in ("exact", "semantic")]
                wrong = [(q, r) for q, r in hits if intent_of_cached(r["cached_prompt"], train_intents) != q[1]]
                hit_rate, false_rate = len(hits) / len(test), (len(wrong) / len(hits) if hits else 0.0)
                table.append((threshold, hit_rate, false_rate))
                wrong_at[threshold] = wrong
                print(f"{threshold:>9.2f} {len(hits):>6} {hit_rate:>8.1%} {len(wrong):>6} {false_rate:>14.2%}")
        within = [row for row in table if row[2] <= TARGET_FALSE_HITS]
        best = max(within, key=lambda row: row[1]) if within else table[-1]
        print(f"\nrecommended default: threshold {best[0]:.2f} -> {best[1]:.1%} hits, {best[2]:.2%} of them wrong "
              f"(the highest hit rate with at most {TARGET_FALSE_HITS:.0%} wrong)")
        sample = random.Random(77).sample(wrong_at[best[0]], min(20, len(wrong_at[best[0]])))
        print(f"\n{len(sample)} sampled wrong hits at {best[0]:.2f} (query [intent] -> cached prompt [intent], similarity):")
        for (query, intent), result in sample:
            cached = result["cached_prompt"]
            print(f"  {query!r} [{intent}]\n    -> {cached!r} [{intent_of_cached(cached, train_intents)}] "
                  f"{result['similarity']:.3f}")
        print("\n" + json.dumps({"table": table, "recommended": best[0]}))
    finally:
        stop_gw()
        stop_sim()


if __name__ == "__main__":
    asyncio.run(main())
