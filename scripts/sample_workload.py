"""Sends a small, realistic workload through the gateway with the demo key, so the ledger
and the dashboard have something to show: Banking77 support questions through the
OpenAI SDK (streamed and not) and the Anthropic SDK, over several models.

    .venv/bin/python scripts/sample_workload.py [--calls 24]
Reads AKA_BASE_URL and AKA_API_KEY from the environment or .local/demo.env.
"""

import argparse
import csv
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import openai

ROOT = Path(__file__).resolve().parent.parent
BANKING77 = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"
FALLBACK_QUESTIONS = ["How do I activate my new card?", "Why was I charged a fee for my transfer?",
                      "My card payment was declined, what happened?", "Can I change my PIN at an ATM?"]
MODELS = ["auto", "gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "gemini-2.5-flash", "llama-3.1-8b-instruct"]


def questions(n: int) -> list[str]:
    if BANKING77.exists():
        with BANKING77.open() as f:
            rows = [row["text"] for row in csv.DictReader(f)]
    else:
        rows = FALLBACK_QUESTIONS
    return random.Random(77).sample(rows, min(n, len(rows))) if len(rows) >= n else (rows * n)[:n]


def one_call(i: int, question: str, base: str, key: str) -> str:
    model = MODELS[i % len(MODELS)]
    system = "You are a concise customer-support agent for an online bank."
    if i % 4 == 3:
        client = anthropic.Anthropic(base_url=base, api_key=key)
        model = "claude-haiku-4-5" if model == "auto" else model
        message = client.messages.create(model=model, max_tokens=200, system=system,
                                         messages=[{"role": "user", "content": question}])
        return f"anthropic  {message.model:24} {message.usage.output_tokens:>4} tokens  {question[:50]}"
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    if i % 2:
        chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True,
                                                      stream_options={"include_usage": True}))
        return f"openai/sse {chunks[-1].model:24} {chunks[-1].usage.completion_tokens:>4} tokens  {question[:50]}"
    completion = client.chat.completions.create(model=model, messages=messages)
    return f"openai     {completion.model:24} {completion.usage.completion_tokens:>4} tokens  {question[:50]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=24)
    args = parser.parse_args()
    env = dict(os.environ)
    demo_env = ROOT / ".local" / "demo.env"
    if demo_env.exists():
        for line in demo_env.read_text().splitlines():
            k, _, v = line.partition("=")
            env.setdefault(k, v)
    base, key = env["AKA_BASE_URL"], env["AKA_API_KEY"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        lines = list(pool.map(lambda a: one_call(*a, base, key), enumerate(questions(args.calls))))
    print("\n".join(lines))
    print(f"{len(lines)} calls sent through {base}")


if __name__ == "__main__":
    main()
