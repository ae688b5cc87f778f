"""bench/cache_quality: intent datasets replayed through the real gateway and simulator.

For each dataset directory given (text,category CSVs train.csv and test.csv; default
Banking77 and HWU64), one tenant's cache is warmed with the training queries
(`Cache-Control: no-cache`: stored, never answered from the cache) in two contexts (two
system prompts): all of them, and all but those of 10 intents (seed 0). The test queries
are then sent at each target wrong-hit rate, and with the second stage off (the first
stage alone at the default threshold), with `x-aka-cache: readonly` so the caches stay the
training sets. A hit is correct when the cached entry's intent equals the query's; in the
held-out context a query of a held-out intent is wrong whenever it hits.

Prints per dataset hit rate and wrong-hit rate per setting for both contexts, and 10
sampled wrong hits at the default setting to read by eye.

    scripts/services.py run -- .venv/bin/python bench/cache_quality.py [DATASET_DIR ...]
    ... bench/cache_quality.py hwu64 banking77 --warmed quality-hwu64-1 --warmed quality-banking77-2 --targets 0.01,off
"""

import argparse
import asyncio
import csv
import json
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

DATASETS = [ROOT.parent / "shared" / "data" / "banking77", ROOT.parent / "shared" / "data" / "hwu64"]
TARGETS = [None, 0.005, 0.01, 0.02]   # None: the second stage off
DEFAULT_TARGET = 0.01                 # models.CacheSettings.target_wrong_hit_rate
HELD_OUT = 10
SYSTEM = "You are a helpful assistant. Answer briefly."
HELD_OUT_SYSTEM = SYSTEM + " "        # another context key: the cache without the held-out intents
QUOTE = re.compile(r'You asked: "(.*)"\. ', re.S)
CONCURRENCY = 16


def rows(directory: Path, name: str) -> list[tuple[str, str]]:
    with (directory / name).open(newline="") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def manage(*args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def new_tenant(name: str) -> tuple[str, str, str]:
    slug = f"quality-{name}-{int(time.time())}"
    out = manage("create_tenant", "Cache quality", "--slug", slug, "--owner-email", f"{slug}@bench.local",
                 "--plan", "Scale", "--rate-limit", "0", "--key", "--key-scope", "admin")
    warm_key = re.search(r"aka_[\w-]{43}", out).group(0)
    return slug, warm_key, test_key_for(slug)


def test_key_for(slug: str, scope: str = "inference") -> str:
    return re.search(r"aka_[\w-]{43}", manage("issue_key", slug, "--name", "test", "--scope", scope)).group(0)


async def replay(client: httpx.AsyncClient, key: str, system: str, texts: list[str], headers: dict) -> list[dict]:
    """Sends every text; returns per text the cache outcome and the cached prompt quoted."""
    results: list[dict] = [{}] * len(texts)
    queue = list(enumerate(texts))

    async def worker():
        while queue:
            i, text = queue.pop()
            response = await client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}", **headers},
                                         json={"model": "gpt-4o-mini", "messages": [
                                             {"role": "system", "content": system}, {"role": "user", "content": text}]})
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


async def warm(client: httpx.AsyncClient, key: str, expected: int, contexts: list[tuple[str, list[str]]]) -> int:
    for system, texts in contexts:
        # no-cache: every training query reaches the provider and is stored, none is
        # answered by an earlier one, so the cache is exactly the training set. Shuffled:
        # the files are sorted by intent, and 16 concurrent writes of one intent would not
        # see each other when their neighbourhood radii are set (decision.entry_statistic),
        # which no real stream of questions does.
        await replay(client, key, system, random.Random(0).sample(texts, len(texts)), {"Cache-Control": "no-cache"})
    stats = {}
    for _ in range(100):  # entries are written just after each response
        stats = (await client.get("/api/cache/", headers={"authorization": f"Bearer {key}"})).json()
        if stats["entries"] >= expected - 5:
            break
        await asyncio.sleep(0.2)
    return stats["entries"]


async def dataset(client: httpx.AsyncClient, directory: Path, warmed: str | None, targets: list) -> dict:
    train, test = rows(directory, "train.csv"), rows(directory, "test.csv")
    train_intents = {text: intent for text, intent in train}
    gone = set(random.Random(0).sample(sorted({c for _, c in train}), HELD_OUT))
    kept = [t for t, c in train if c not in gone]
    started = time.monotonic()
    if warmed:   # a tenant an earlier run of this bench warmed: its two caches are the training sets
        slug, warm_key = warmed, test_key_for(warmed, "admin")
        test_key = warm_key
        entries = (await client.get("/api/cache/", headers={"authorization": f"Bearer {warm_key}"})).json()["entries"]
        how = "warmed by an earlier run"
    else:
        slug, warm_key, test_key = new_tenant(directory.name)
        entries = await warm(client, warm_key, len(set(train_intents)) + len(set(kept)),
                             [(SYSTEM, [t for t, _ in train]), (HELD_OUT_SYSTEM, kept)])
        how = f"warmed in {time.monotonic() - started:.0f}s"
    print(f"\n{directory.name}: tenant {slug}, {entries} entries ({len(train)} training queries; {len(kept)} without "
          f"{HELD_OUT} intents), {how}; {len(test)} test queries, "
          f"{sum(c in gone for _, c in test)} of them of the held-out intents")
    print(f"{'target':>8} | {'hits':>6} {'hit rate':>8} {'wrong':>5} {'wrong rate':>10} | "
          f"{HELD_OUT} intents held out: {'hits':>6} {'hit rate':>8} {'wrong':>5} {'wrong rate':>10}")
    table, sample = [], []
    for target in targets:
        await client.patch("/api/cache/settings/", headers={"authorization": f"Bearer {warm_key}"},
                           json={"target_wrong_hit_rate": target})
        await asyncio.sleep(2.5)  # every process re-reads tenant settings within AKA_KEY_CACHE_TTL
        line = []
        for system in (SYSTEM, HELD_OUT_SYSTEM):
            results = await replay(client, test_key, system, [t for t, _ in test], {"x-aka-cache": "readonly"})
            hits = [(q, r) for q, r in zip(test, results, strict=True) if r["cache"] in ("exact", "semantic")]
            wrong = [(q, r) for q, r in hits
                     if q[1] in gone and system == HELD_OUT_SYSTEM
                     or intent_of_cached(r["cached_prompt"], train_intents) != q[1]]
            line.append((len(hits), len(hits) / len(test), len(wrong), len(wrong) / len(hits) if hits else 0.0))
            if target == DEFAULT_TARGET and system == SYSTEM:
                sample = random.Random(0).sample(wrong, min(10, len(wrong)))
        name = "off" if target is None else f"{target:.1%}"
        (h, hr, w, wr), (h2, hr2, w2, wr2) = line
        print(f"{name:>8} | {h:>6} {hr:>8.1%} {w:>5} {wr:>10.2%} | {'':>21}{h2:>6} {hr2:>8.1%} {w2:>5} {wr2:>10.2%}")
        table.append({"target": target, "all": line[0], "held_out": line[1]})
    if DEFAULT_TARGET in targets:
        print(f"{len(sample)} sampled wrong hits at {DEFAULT_TARGET:.0%} (query [intent] -> cached prompt [intent], "
              "similarity):")
    for (query, intent), result in sample:
        cached = result["cached_prompt"]
        print(f"  {query!r} [{intent}]\n    -> {cached!r} [{intent_of_cached(cached, train_intents)}] "
              f"{result['similarity']:.3f}")
    return {"dataset": directory.name, "table": table}


async def main(directories: list[Path], warmed: list[str], targets: list) -> None:
    sim_url, stop_sim = start_simulator(fast=True)
    gw_url, stop_gw = start_gateway(simulator_url=sim_url)
    try:
        async with httpx.AsyncClient(base_url=gw_url, timeout=60,
                                     limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
            print("bench/cache_quality: hit and wrong-hit rates through the gateway per target wrong-hit rate "
                  "(off: the first stage alone at the default threshold)")
            out = [await dataset(client, d, w, targets)
                   for d, w in zip(directories, warmed + [None] * len(directories), strict=False)]
        print("\n" + json.dumps(out))
    finally:
        stop_gw()
        stop_sim()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", type=Path, default=DATASETS,
                        help="directories with train.csv and test.csv (text,category)")
    parser.add_argument("--warmed", action="append", default=[], metavar="SLUG",
                        help="reuse the tenant an earlier run warmed for the dataset in the same position (warming "
                             "20,000 entries through the gateway takes 10 to 60 minutes, by the machine's load)")
    parser.add_argument("--targets", type=lambda v: [None if t == "off" else float(t) for t in v.split(",")],
                        default=TARGETS, help="comma-separated target wrong-hit rates, 'off' for the first stage alone")
    args = parser.parse_args()
    asyncio.run(main(args.datasets, args.warmed, args.targets))
