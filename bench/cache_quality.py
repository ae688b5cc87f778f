"""bench/cache_quality: intent datasets replayed through the real gateway and simulator.

For each dataset directory given (text,category CSVs train.csv and test.csv; default
Banking77 and HWU64), one tenant's cache is warmed with the training queries
(`Cache-Control: no-cache`: stored, never answered from the cache) in two contexts (two
system prompts): all of them, and all but those of 10 intents (seed 0). The test queries
are then sent at each target wrong-hit rate, and with the second stage off (the first
stage alone at the default threshold), with `x-aka-cache: readonly` so the caches stay the
training sets. A hit is correct when the cached entry's intent equals the query's; in the
held-out context a query of a held-out intent is wrong whenever it hits.

Prints per dataset hit rate and wrong-hit rate per setting for both contexts (with the 90%
interval of the true wrong-hit rate behind the count), and 10 sampled wrong hits at the
default setting to read by eye.

`--warm-in-process`: the first training query of each context goes through the gateway;
the rest are written by the cache's own lookup and store code (services.lookup, then
services.remember, one at a time in the same shuffled order: online radii as the gateway
sets them) called from this process, with the probe's context key and an answer quoting
the query as the simulator's does. Warming 20,000 entries through the gateway takes 10 to
60 minutes on a loaded machine; this takes a few.

`--learn F`: after the table, a learning phase at the default target: the fraction F of
the test queries (seed 0) is sent, and each semantic hit is judged through `POST
/v1/feedback` (thumbs up when the cached entry's intent is the query's, down otherwise),
as a client clicking thumbs would; a thumbs down demotes the served entry for semantic
serving in its context. The remaining test queries, which never received feedback, are
then sent again: their figures before (from the table) and after learning are printed side
by side.

    scripts/services.py run -- .venv/bin/python bench/cache_quality.py [DATASET_DIR ...]
    ... bench/cache_quality.py hwu64 banking77 --warmed quality-hwu64-1 --warmed quality-banking77-2 --targets 0.01,off
    ... bench/cache_quality.py hwu64 banking77 --warm-in-process --targets 0.01,off --learn 0.5
"""

import argparse
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
                          "request_id": response.headers["x-request-id"],
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


async def warm_in_process(client: httpx.AsyncClient, slug: str, key: str, expected: int,
                          contexts: list[tuple[str, list[str]]]) -> int:
    """As warm(), the first query of each context through the gateway and the rest through
    the cache's own lookup and store code in this process (see the module docstring)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "akaplatform.settings")
    import django

    django.setup()
    from apps.cache import services
    from apps.cache.keys import exact_key
    from apps.cache.models import DEFAULT_THRESHOLD, CacheEntry
    from apps.core import orm
    from apps.core.llm import ChatResult, Usage
    from apps.tenants.models import Tenant

    tenant = await orm.run(Tenant.objects.get, slug=slug)
    warmed = []   # context keys: the probe must be this context's entry, not an earlier one's of the same text
    for system, texts in contexts:
        texts = random.Random(0).sample(texts, len(texts))   # as warm(): a shuffled stream
        await replay(client, key, system, texts[:1], {"Cache-Control": "no-cache"})
        for _ in range(100):   # written just after the response
            probe = await orm.run(lambda t=texts[0]: CacheEntry.objects.for_tenant(tenant).filter(prompt_text=t)
                                  .exclude(context_key__in=warmed).order_by("-created_at").first())
            if probe is not None:
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"the gateway did not store the probe {texts[0]!r} within 10 s")
        warmed.append(probe.context_key)
        for text in texts[1:]:
            plan = services.Plan(tenant_id=tenant.pk, api_key_id=probe.api_key_id, scope="",
                                 context=probe.context_key, exact=exact_key(probe.context_key, "", text), prompt=text,
                                 threshold=DEFAULT_THRESHOLD, target=None, ttl_seconds=7 * 24 * 3600, tool_calls=False,
                                 generation=0, read=False)
            miss = await services.lookup(plan)
            usage = probe.response.get("usage") or {}
            await services.remember(plan, miss, ChatResult(
                id="", model=probe.model, content=f'You asked: "{text}". (warmed in process)', finish_reason="stop",
                usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)), provider="warm"))
    return (await client.get("/api/cache/", headers={"authorization": f"Bearer {key}"})).json()["entries"]


def figures(test: list[tuple[str, str]], results: list[dict], gone: set, held_out: bool,
            train_intents: dict[str, str]) -> tuple[tuple, list]:
    """(hits, hit rate, wrong, wrong rate) of a replay, and its wrong hits."""
    hits = [(q, r) for q, r in zip(test, results, strict=True) if r["cache"] in ("exact", "semantic")]
    wrong = [(q, r) for q, r in hits
             if q[1] in gone and held_out or intent_of_cached(r["cached_prompt"], train_intents) != q[1]]
    return (len(hits), len(hits) / len(test), len(wrong), len(wrong) / len(hits) if hits else 0.0), wrong


def interval(wrong: int, hits: int) -> str:
    """The 90% interval of the true wrong-hit rate behind `wrong` of `hits` (Jeffreys): the
    test splits are samples, and at HWU64's size (about 200 hits at the default) one wrong
    hit more or less moves the rate by half a point."""
    from scipy.stats import beta

    if not hits:
        return "-"
    low, high = beta.ppf([0.05, 0.95], wrong + 0.5, hits - wrong + 0.5)
    return f"{0.0 if wrong == 0 else low:.2%}-{1.0 if wrong == hits else high:.2%}"


def header(first: str) -> str:
    columns = f"{'hits':>6} {'hit rate':>8} {'wrong':>5} {'wrong rate':>10} {'90% interval':>13}"
    return f"{first:>8} | {columns} | {HELD_OUT} intents held out: {columns}"


def line(name: str, counts: tuple, held_out: tuple) -> str:
    """One row of the table: (hits, hit rate, wrong, wrong rate) in both contexts."""
    (h, hr, w, wr), (h2, hr2, w2, wr2) = counts, held_out
    return (f"{name:>8} | {h:>6} {hr:>8.1%} {w:>5} {wr:>10.2%} {interval(w, h):>13} | {'':>21}"
            f"{h2:>6} {hr2:>8.1%} {w2:>5} {wr2:>10.2%} {interval(w2, h2):>13}")


async def judge(client: httpx.AsyncClient, key: str, test: list[tuple[str, str]], results: list[dict],
                train_intents: dict[str, str]) -> tuple[int, int]:
    """Thumbs on every semantic hit of a replay, as a client that checks its answers would
    click them: up when the cached entry's intent is the query's. Returns (up, down)."""
    up = down = 0
    for (_, intent), result in zip(test, results, strict=True):
        if result["cache"] != "semantic":
            continue
        right = intent_of_cached(result["cached_prompt"], train_intents) == intent
        for _ in range(50):   # the call's ledger row is written just after its response
            answer = await client.post("/v1/feedback", headers={"authorization": f"Bearer {key}"},
                                       json={"request_id": result["request_id"], "thumbs": "up" if right else "down"})
            if answer.status_code != 404:
                break
            await asyncio.sleep(0.1)
        answer.raise_for_status()
        up, down = up + right, down + (not right)
    return up, down


async def learn(client: httpx.AsyncClient, key: str, admin_key: str, test: list[tuple[str, str]], fraction: float,
                before: dict, gone: set, train_intents: dict[str, str]) -> None:
    """The learning phase (module docstring); `before`: per context, the default target's
    results on the whole test split, from the table."""
    order = random.Random(0).sample(range(len(test)), len(test))
    learning, evaluated = sorted(order[:int(len(test) * fraction)]), sorted(order[int(len(test) * fraction):])
    await client.patch("/api/cache/settings/", headers={"authorization": f"Bearer {admin_key}"},
                       json={"target_wrong_hit_rate": DEFAULT_TARGET})
    await asyncio.sleep(2.5)
    taught = [test[i] for i in learning]
    results = await replay(client, key, SYSTEM, [t for t, _ in taught], {"x-aka-cache": "readonly"})
    up, down = await judge(client, key, taught, results, train_intents)
    await asyncio.sleep(2.5)   # every process re-reads the tenant's tally within AKA_KEY_CACHE_TTL
    kept = [test[i] for i in evaluated]
    print(f"learning at {DEFAULT_TARGET:.0%}: {len(learning)} test queries sent, {up + down} semantic hits judged "
          f"({down} thumbs down); the other {len(evaluated)} test queries, never judged, before and after:")
    print(header(''))
    after = {system: await replay(client, key, system, [t for t, _ in kept], {"x-aka-cache": "readonly"})
             for system in (SYSTEM, HELD_OUT_SYSTEM)}
    for name, runs in (("before", {s: [r[i] for i in evaluated] for s, r in before.items()}), ("after", after)):
        print(line(name, figures(kept, runs[SYSTEM], gone, False, train_intents)[0],
                   figures(kept, runs[HELD_OUT_SYSTEM], gone, True, train_intents)[0]))


async def dataset(client: httpx.AsyncClient, directory: Path, warmed: str | None, targets: list,
                  in_process: bool, learning: float | None) -> dict:
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
        contexts = [(SYSTEM, [t for t, _ in train]), (HELD_OUT_SYSTEM, kept)]
        if in_process:
            entries = await warm_in_process(client, slug, warm_key, len(set(train_intents)) + len(set(kept)), contexts)
        else:
            entries = await warm(client, warm_key, len(set(train_intents)) + len(set(kept)), contexts)
        how = f"warmed {'in process ' if in_process else ''}in {time.monotonic() - started:.0f}s"
    print(f"\n{directory.name}: tenant {slug}, {entries} entries ({len(train)} training queries; {len(kept)} without "
          f"{HELD_OUT} intents), {how}; {len(test)} test queries, "
          f"{sum(c in gone for _, c in test)} of them of the held-out intents")
    print(header('target'))
    table, sample, at_default = [], [], {}
    for target in targets:
        await client.patch("/api/cache/settings/", headers={"authorization": f"Bearer {warm_key}"},
                           json={"target_wrong_hit_rate": target})
        await asyncio.sleep(2.5)  # every process re-reads tenant settings within AKA_KEY_CACHE_TTL
        both = []
        for system in (SYSTEM, HELD_OUT_SYSTEM):
            results = await replay(client, test_key, system, [t for t, _ in test], {"x-aka-cache": "readonly"})
            counts, wrong = figures(test, results, gone, system == HELD_OUT_SYSTEM, train_intents)
            both.append(counts)
            if target == DEFAULT_TARGET:
                at_default[system] = results
                if system == SYSTEM:
                    sample = random.Random(0).sample(wrong, min(10, len(wrong)))
        name = "off" if target is None else f"{target:.1%}"
        print(line(name, *both))
        table.append({"target": target, "all": both[0], "held_out": both[1]})
    if DEFAULT_TARGET in targets:
        print(f"{len(sample)} sampled wrong hits at {DEFAULT_TARGET:.0%} (query [intent] -> cached prompt [intent], "
              "similarity):")
    for (query, intent), result in sample:
        cached = result["cached_prompt"]
        print(f"  {query!r} [{intent}]\n    -> {cached!r} [{intent_of_cached(cached, train_intents)}] "
              f"{result['similarity']:.3f}")
    if learning:
        if DEFAULT_TARGET not in targets:
            raise SystemExit(f"--learn compares with the table's figures at {DEFAULT_TARGET}: put it in --targets")
        await learn(client, test_key, warm_key, test, learning, at_default, gone, train_intents)
    return {"dataset": directory.name, "table": table}


async def main(directories: list[Path], warmed: list[str], targets: list, in_process: bool,
               learning: float | None) -> None:
    sim_url, stop_sim = start_simulator(fast=True)
    gw_url, stop_gw = start_gateway(simulator_url=sim_url)
    try:
        async with httpx.AsyncClient(base_url=gw_url, timeout=60,
                                     limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
            print("bench/cache_quality: hit and wrong-hit rates through the gateway per target wrong-hit rate "
                  "(off: the first stage alone at the default threshold)")
            out = [await dataset(client, d, w, targets, in_process, learning)
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
    parser.add_argument("--warm-in-process", action="store_true",
                        help="warm through the cache's own lookup and store code in this process (docstring)")
    parser.add_argument("--learn", type=float, metavar="FRACTION",
                        help="a learning phase with feedback on this fraction of the test queries (docstring)")
    args = parser.parse_args()
    asyncio.run(main(args.datasets, args.warmed, args.targets, args.warm_in_process, args.learn))
