"""bench/routing: learned routing and speculation replayed on real model outcomes.

    make bench-routing [ARGS="..."]      or
    python bench/routing.py [DATA_DIR] [--sample N] [--orders 5] [--modes off,cascade,race,selective] ...

DATA_DIR (default ../shared/data/routellm) holds prompts with the recorded correctness
(and, where kept, the answers) of a strong and a weak model; the simulator replays them
(simulator/replay.py) at the catalog's latency profiles, and tells this bench on the side
whether an answer was correct (/_sim/verdict). Everything else is the real gateway: for
each dataset, speculation mode and random order, a fresh tenant whose pool is (weak,
strong) calls `model: "auto"`:
- learning phase: the first LEARN share of the shuffled prompts, each answer followed by
  the client's thumbs up or down (the verdict on the model that answered);
- evaluation phase: the other prompts, no feedback. Only these are scored.
All-strong and all-weak are the same prompts sent to each model by name through the same
gateway: their cost (x-aka-cost-usd) and latency are measured, their accuracy is the
recorded one. Only the held-out half of the prompts is replayed (bench/routing_split.py:
the learned math judge and the subject priors were fitted on the other). Routed cost is
the ledger's provider_cost_micros (draft, strong and judge
calls included). Latency is the client's, request to last byte, non-streaming, at
`--concurrency` calls in flight. Datasets larger than --sample are sampled (seeded).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from harness import ROOT, Gateway, ledger_rows, make_tenant, percentile, router_settings, spread
from routing_split import in_training_half

from tests.live import start_gateway, start_simulator  # harness (above) put ROOT on the path

STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
MODES = ("off", "cascade", "race", "selective")
SYSTEM = {
    "gsm8k": "Solve the math word problem step by step. End with the final answer on its own line as '#### <number>'.",
    "mmlu": "Answer the multiple-choice question with the letter of the correct option only.",
}
# From the data's README (RouteLLM paper tables 2, 3, 6 and its blog), and issue 10.
PUBLISHED = {
    "gsm8k": "RouteLLM best router: CPT50 33.6% strong calls, CPT80 63.3%, APGR 0.622; "
             "~1.5x cheaper than strong-only at 95% of its quality (blog: 35% cost reduction)",
    "mmlu": "RouteLLM best router: CPT50 35.4% strong calls, CPT80 70.3%, APGR 0.603; "
            "~1.8x cheaper than strong-only at 95% of its quality (blog: 45% cost reduction)",
}
TARGETS = {"gsm8k": "issue 10 target: >= 2.5x at >= 95% of strong accuracy (a study: routing alone ~1.4x)",
           "mmlu": "issue 10 target: >= 1.9x at >= 95% of strong accuracy (a study: routing alone ~1.7x)"}


@dataclass
class Row:
    id: str
    prompt: str
    strong: bool
    weak: bool


@dataclass
class Run:
    """One evaluation phase (or one baseline sweep)."""
    accuracy: float = math.nan
    strong_acc: float = math.nan
    weak_acc: float = math.nan
    strong_share: float = math.nan
    reduction: float = math.nan
    p50: float = math.nan
    p95: float = math.nan
    errors: int = 0
    unknown: int = 0
    outcomes: Counter = field(default_factory=Counter)
    routes: Counter = field(default_factory=Counter)
    judged: Counter = field(default_factory=Counter)   # (weak model was right, draft accepted) -> calls

    @property
    def of_strong(self) -> float:
        return self.accuracy / self.strong_acc if self.strong_acc else math.nan

    @property
    def gap_recovered(self) -> float:
        gap = self.strong_acc - self.weak_acc
        return (self.accuracy - self.weak_acc) / gap if gap else math.nan


def load(data_dir: Path, sample: int, held_out: bool) -> dict[str, list[Row]]:
    """Rows per dataset, one per distinct prompt (the simulator keeps the first too); with
    `held_out`, only prompts outside the training half the router's shipped models were
    fitted on (bench/routing_split.py)."""
    datasets: dict[str, list[Row]] = {}
    seen: set[str] = set()
    for path in sorted(data_dir.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            raw = orjson.loads(line)
            key = raw["prompt"].strip()
            if key in seen or (held_out and in_training_half(raw["id"])):
                continue
            seen.add(key)
            datasets.setdefault(raw.get("dataset") or path.stem, []).append(
                Row(raw["id"], raw["prompt"], bool(raw["strong_correct"]), bool(raw["weak_correct"])))
    for name, rows in datasets.items():
        if len(rows) > sample:
            datasets[name] = random.Random(f"sample-{name}").sample(rows, sample)
    return datasets


def body(dataset: str, row: Row, model: str) -> dict:
    messages = [{"role": "user", "content": row.prompt}]
    if dataset in SYSTEM:
        messages.insert(0, {"role": "system", "content": SYSTEM[dataset]})
    return {"model": model, "messages": messages, "max_tokens": 1024, "temperature": 0}


NO_CACHE = {"x-aka-cache": "off"}  # routing is measured alone; bench/savings adds the cache


async def baselines(gw: Gateway, key: str, dataset: str, rows: list[Row]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per model, per prompt id: (cost in USD, latency ms) of the model answering alone."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for model in (STRONG, WEAK):
        replies = await gw.each(rows, lambda row, m=model: gw.chat(key, body(dataset, row, m), NO_CACHE))
        bad = [r for r in replies if r.status != 200 or r.model != model]
        if bad:
            raise SystemExit(f"{model} alone: {len(bad)} calls failed or were served by another model "
                             f"(first: {bad[0].status} {bad[0].model})")
        out[model] = {row.id: (r.cost_usd, r.latency_ms) for row, r in zip(rows, replies, strict=True)}
    return out


async def phase(gw: Gateway, key: str, dataset: str, rows: list[Row], *, feedback: bool):
    async def one(row: Row):
        reply = await gw.chat(key, body(dataset, row, "auto"), NO_CACHE)
        good = await gw.verdict(reply.model, row.prompt) if reply.status == 200 else None
        if feedback and good is not None:
            await gw.feedback(key, reply.request_id, good)
        return reply, good
    return await gw.each(rows, one)


def warm_up(gw_url: str, sim_url: str, concurrency: int) -> None:
    """Connections, pools and snapshots warm before anything is timed (not measured)."""
    _, key = make_tenant("bench-routing-warm")

    async def go():
        gw = Gateway(gw_url, sim_url, concurrency)
        try:
            hello = [{"role": "user", "content": "Hello there"}]
            await gw.each([WEAK, STRONG] * concurrency, lambda m: gw.chat(key, {"model": m, "messages": hello,
                                                                               "max_tokens": 1}, NO_CACHE))
        finally:
            await gw.close()
    asyncio.run(go())


def probe_router(gw_url: str, sim_url: str) -> str | None:
    """None when `auto` is routed (x-aka-route on the answer), else why not."""
    update = router_settings()
    if update is None:
        return "apps.routing.services.routing_settings_update does not exist in this build"
    tenant, key = make_tenant("bench-routing-probe")
    update(tenant=tenant, pool=[WEAK, STRONG])

    async def go():
        gw = Gateway(gw_url, sim_url, 1)
        try:
            return await gw.chat(key, {"model": "auto", "messages": [{"role": "user", "content": "Hello there"}]},
                                 NO_CACHE)
        finally:
            await gw.close()
    reply = asyncio.run(go())
    if reply.status != 200:
        return f"`auto` answered {reply.status}"
    if not reply.route:
        return f"`auto` was answered by {reply.model} without an x-aka-route header (no router in the pipeline)"
    return None


@dataclass
class Plan:
    """One random order of one mode: a fresh tenant, its learning and evaluation prompts."""
    mode: str
    order: int
    tenant: object
    key: str
    learn: list[Row]
    test: list[Row]


def plan_runs(args, dataset: str, rows: list[Row], modes: list[str]) -> list[Plan]:
    plans = []
    for mode in modes:
        for order in range(args.orders):
            shuffled = rows[:]
            random.Random(f"order-{order}").shuffle(shuffled)
            cut = int(len(shuffled) * args.learn)
            tenant, key = make_tenant(f"bench-routing-{dataset}-{mode}")
            router_settings()(tenant=tenant, pool=[WEAK, STRONG], speculation=mode, quality_floor=args.quality_floor,
                              judge=args.judge)
            plans.append(Plan(mode, order, tenant, key, shuffled[:cut], shuffled[cut:]))
    return plans


async def play(gw: Gateway, dataset: str, plan: Plan, settle: float):
    await phase(gw, plan.key, dataset, plan.learn, feedback=True)
    await asyncio.sleep(settle)   # the router learns off the hot path
    return await phase(gw, plan.key, dataset, plan.test, feedback=False)


def score(plan: Plan, results, alone: dict[str, dict[str, tuple[float, float]]]) -> Run:
    ok = [(row, reply, good) for row, (reply, good) in zip(plan.test, results, strict=True) if reply.status == 200]
    ledger = ledger_rows(plan.tenant, [reply.request_id for _, reply, _ in ok])
    paid = sum(float(ledger[r.request_id]["provider_cost_micros"]) / 1e6 if r.request_id in ledger else r.cost_usd
               for _, r, _ in ok)
    strong_cost = sum(alone[STRONG][row.id][0] for row, _, _ in ok)
    run = Run(errors=len(plan.test) - len(ok), unknown=sum(good is None for *_, good in ok))
    n = len(ok) or 1
    run.accuracy = sum(bool(good) for *_, good in ok) / n
    run.strong_acc = sum(row.strong for row, _, _ in ok) / n
    run.weak_acc = sum(row.weak for row, _, _ in ok) / n
    run.strong_share = sum(r.model == STRONG for _, r, _ in ok) / n
    run.reduction = strong_cost / paid if paid else math.nan
    latencies = [r.latency_ms for _, r, _ in ok]
    run.p50, run.p95 = percentile(latencies, 50), percentile(latencies, 95)
    run.outcomes = Counter(row["speculation_outcome"] or "-" for row in ledger.values())
    run.routes = Counter(r.route for _, r, _ in ok)
    run.judged = Counter((row.weak, ledger[r.request_id]["speculation_outcome"] == "accepted") for row, r, _ in ok
                         if ledger.get(r.request_id, {}).get("speculation_outcome") in ("accepted", "rejected"))
    return run


def report_dataset(dataset: str, rows: list[Row], alone, runs: dict[str, list[Run]], args, why_not: str | None):
    n = len(rows)
    strong_acc = sum(r.strong for r in rows) / n
    weak_acc = sum(r.weak for r in rows) / n
    cost = {m: sum(alone[m][r.id][0] for r in rows) for m in (STRONG, WEAK)}
    lat = {m: [alone[m][r.id][1] for r in rows] for m in (STRONG, WEAK)}
    print(f"\n== {dataset}: {n} prompts; evaluation on {n - int(n * args.learn)} per order after learning on "
          f"{int(n * args.learn)} (with thumbs feedback); {len(next(iter(runs.values()), []))} orders; "
          f"{args.concurrency} calls in flight ==")
    head = (f"{'route':26} {'accuracy':>22} {'% of strong':>20} {'strong share':>20} {'cost x vs strong':>20} "
            f"{'p50 ms':>18} {'p95 ms':>18}")
    print(head)
    print(f"{'all-strong ' + STRONG:26} {strong_acc:>22.3f} {1:>20.3f} {1:>20.2f} {1:>20.2f} "
          f"{percentile(lat[STRONG], 50):>18.0f} {percentile(lat[STRONG], 95):>18.0f}")
    print(f"{'all-weak ' + WEAK[:17]:26} {weak_acc:>22.3f} {weak_acc / strong_acc:>20.3f} {0:>20.2f} "
          f"{cost[STRONG] / cost[WEAK]:>20.2f} {percentile(lat[WEAK], 50):>18.0f} {percentile(lat[WEAK], 95):>18.0f}")
    if why_not:
        print(f"{'auto (routed)':26} NOT MEASURED: {why_not}")
    for mode, mode_runs in runs.items():
        label = "auto, routing only" if mode == "off" else f"auto, {mode}"
        print(f"{label:26} {spread([r.accuracy for r in mode_runs], '{:.3f}'):>22} "
              f"{spread([r.of_strong for r in mode_runs], '{:.3f}'):>20} "
              f"{spread([r.strong_share for r in mode_runs]):>20} {spread([r.reduction for r in mode_runs]):>20} "
              f"{spread([r.p50 for r in mode_runs], '{:.0f}'):>18} {spread([r.p95 for r in mode_runs], '{:.0f}'):>18}")
    for mode, mode_runs in runs.items():
        outcomes = sum((r.outcomes for r in mode_runs), Counter())
        routes = sum((r.routes for r in mode_runs), Counter())
        errors, unknown = sum(r.errors for r in mode_runs), sum(r.unknown for r in mode_runs)
        judged = sum((r.judged for r in mode_runs), Counter())
        if judged:
            wrong, right = judged[(False, True)] + judged[(False, False)], judged[(True, True)] + judged[(True, False)]
            print(f"  {mode:10} judge on the weak drafts it saw: passes {judged[(False, True)] / max(wrong, 1):.0%} of "
                  f"{wrong} wrong ones, {judged[(True, True)] / max(right, 1):.0%} of {right} right ones (recall)")
        print(f"  {mode:10} gap recovered {spread([r.gap_recovered for r in mode_runs])}; eval-set strong/weak accuracy "
              f"{spread([r.strong_acc for r in mode_runs], '{:.3f}')}/{spread([r.weak_acc for r in mode_runs], '{:.3f}')};"
              f" speculation outcomes {dict(outcomes)}; x-aka-route {dict(routes)}; errors {errors}; "
              f"answers by a model outside the pair (counted wrong) {unknown}")
    print(f"  published: {PUBLISHED.get(dataset, 'none for this dataset')}")
    print(f"  {TARGETS.get(dataset, '')}")


def concurrency(spec: str) -> dict[str, int]:
    if "=" not in spec:
        return {"*": int(spec)}
    found = {"*": 32}
    found.update((name, int(n)) for name, _, n in (part.partition("=") for part in spec.split(",") if part))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", nargs="?", default=str(ROOT.parent / "shared" / "data" / "routellm"))
    parser.add_argument("--datasets", default="", help="comma-separated (default: every dataset in DATA_DIR)")
    parser.add_argument("--sample", type=int, default=120,
                        help="prompts per dataset at most (seeded sample; a large number runs everything: 10,683"
                             " prompts, about 214,000 routed calls, hours on two cores)")
    parser.add_argument("--orders", type=int, default=5, help="random orders (fresh tenant each)")
    parser.add_argument("--modes", default=",".join(MODES), help="speculation modes: off,cascade,race,selective")
    parser.add_argument("--learn", type=float, default=0.5, help="share of the prompts in the learning phase")
    parser.add_argument("--quality-floor", type=float, default=0.95)
    parser.add_argument("--judge", default="heuristic", help="heuristic | logprob | llm")
    parser.add_argument("--concurrency", default="64",
                        help="calls in flight (all runs of a dataset share them), per dataset as gsm8k=96,mmlu=32,*=64"
                             " or one number for all. Long answers need many in flight to finish in time; short ones"
                             " queue behind the gateway's CPU when too many are")
    parser.add_argument("--all-prompts", action="store_true",
                        help="replay the training half too (the learned math judge and the subject priors were fitted"
                             " on it: figures on it are not measurements)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between learning and evaluation")
    args = parser.parse_args()
    data_dir = Path(args.data_dir).resolve()
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    datasets = load(data_dir, args.sample, held_out=not args.all_prompts)
    if args.datasets:
        datasets = {k: v for k, v in datasets.items() if k in args.datasets.split(",")}
    modes = [m for m in args.modes.split(",") if m]
    in_flight = concurrency(args.concurrency)
    sim_url, stop_sim = start_simulator(fast=False, replay=data_dir)
    gw_url, stop_gw = start_gateway(simulator_url=sim_url, extra_env={"AKA_CATALOG_TTL": "1"})
    try:
        warm_up(gw_url, sim_url, 32)
        why_not = probe_router(gw_url, sim_url)
        print(f"bench/routing  data {data_dir}  pool ({WEAK}, {STRONG})  quality floor {args.quality_floor}  "
              f"judge {args.judge}  learn share {args.learn}  orders {args.orders}  modes {','.join(modes)}")
        print(f"datasets: {', '.join(f'{k} {len(v)} prompts' for k, v in datasets.items())} (sample cap {args.sample}"
              f"{'' if args.all_prompts else '; held-out half only: bench/routing_split.py'})")
        if why_not:
            print(f"ROUTER NOT AVAILABLE: {why_not}. Only the baselines are measured.")
        for dataset, rows in datasets.items():
            t0 = time.monotonic()
            args.concurrency = in_flight.get(dataset, in_flight["*"])
            _, key = make_tenant("bench-routing-alone")
            plans = [] if why_not else plan_runs(args, dataset, rows, modes)

            async def measure(rows=rows, dataset=dataset, key=key, plans=plans):
                gw = Gateway(gw_url, sim_url, args.concurrency)
                try:
                    alone = await baselines(gw, key, dataset, rows)
                    # Every order of every mode at once (each its own tenant), within one cap of calls in flight.
                    return alone, await asyncio.gather(*(play(gw, dataset, p, args.settle) for p in plans))
                finally:
                    await gw.close()
            alone, results = asyncio.run(measure())
            runs: dict[str, list[Run]] = {}
            for plan, result in zip(plans, results, strict=True):
                runs.setdefault(plan.mode, []).append(score(plan, result, alone))
            report_dataset(dataset, rows, alone, runs, args, why_not)
            print(f"  ({time.monotonic() - t0:.0f} s for {dataset})")
    finally:
        stop_gw()
        stop_sim()
    print(f"\ntotal {time.monotonic() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f} "
          f"(at the start {load_at_start:.1f}) on {os.cpu_count()} CPUs: latencies include queueing behind other work")


if __name__ == "__main__":
    main()
