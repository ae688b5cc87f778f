"""Task skills: simulated answer quality for the seed-shaped workloads (bench/savings).

Each model has a skill per task kind (support, content, code): the probability that its
answer to a prompt of that kind is good. Whether one answer is good is decided by hashes
of the model and the prompt, so it is the same on every run: with probability SHARED the
model uses the prompt's own difficulty draw (the draw every model shares: a prompt hard
for one model tends to be hard for the others), otherwise a draw of its own; either way a
model is good on a share `skill` of the prompts.

The simulator learns a prompt's kind only from the benchmark, through `POST /_sim/tasks`
(a side channel the gateway never sees: the ground truth never comes from the gateway's
own classifier). Prompts of no registered kind get the ordinary simulator answers.

A bad answer usually looks like a good one (only `POST /_sim/verdict` tells them apart);
a share DETECTABLE of bad answers shows it: a refusal, or an answer cut short with
finish reason "length". The figures below are assumptions, printed by bench/savings.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b

KINDS = ("support", "content", "code")
SHARED = 0.7
DETECTABLE = 0.35
# Good-answer probability per model and kind (assumed: strong models near the top,
# small models weakest at code, support the easiest kind).
DEFAULT_SKILLS: dict[str, dict[str, float]] = {
    "gpt-4o": {"support": 0.97, "content": 0.95, "code": 0.92},
    "gpt-4.1": {"support": 0.97, "content": 0.95, "code": 0.94},
    "claude-sonnet-4-5": {"support": 0.97, "content": 0.96, "code": 0.95},
    "gemini-2.5-pro": {"support": 0.96, "content": 0.94, "code": 0.93},
    "gpt-4-1106-preview": {"support": 0.96, "content": 0.93, "code": 0.90},
    "gpt-4o-mini": {"support": 0.94, "content": 0.88, "code": 0.80},
    "claude-haiku-4-5": {"support": 0.94, "content": 0.90, "code": 0.85},
    "gemini-2.5-flash": {"support": 0.93, "content": 0.88, "code": 0.82},
    "mixtral-8x7b-instruct-v0.1": {"support": 0.88, "content": 0.80, "code": 0.65},
    "gpt-4.1-nano": {"support": 0.88, "content": 0.78, "code": 0.65},
    "llama-3.1-8b-instruct": {"support": 0.85, "content": 0.72, "code": 0.55},
}
# Answer length in tokens per kind (min, max), drawn per model and prompt.
LENGTHS = {"support": (60, 110), "content": (220, 380), "code": (140, 280)}

SENTENCES = {
    "support": (
        "Thanks for reaching out, I can help with that.",
        "You can do this in the app under Cards, then Settings.",
        "The change usually takes effect within a few minutes.",
        "If the payment still shows as pending, it will settle within two business days.",
        "For your security, never share your PIN or one-time codes with anyone.",
        "Let me know if anything is still unclear and I will follow up.",
        "You will get a notification once the transfer is complete.",
        "A replacement card normally arrives within five working days.",
    ),
    "content": (
        "Every strong piece starts with the reader's problem, not the product.",
        "The first paragraph sets the promise, and the rest keeps it.",
        "Short sentences carry the argument; examples make it stick.",
        "A clear call to action closes the piece without pressure.",
        "Headlines work best when they name a concrete benefit.",
        "Each section answers one question the reader would ask next.",
        "Data points earn trust when their source is named.",
        "The tone stays friendly and direct throughout.",
    ),
    "code": (
        "Here is a small function that does it, with the edge cases handled.",
        "It runs in linear time and keeps memory constant.",
        "The test below covers the empty input and a typical case.",
        "Errors are raised early with a clear message.",
        "You can drop it into your module as is.",
    ),
}
CODE_BLOCK = "```python\ndef solve(items):\n    if not items:\n        return []\n    return sorted(set(items))\n```"
REFUSAL = "I'm sorry, but I can't help with that request."


def unit(*parts: str) -> float:
    """A uniform draw in [0, 1) from a hash of `parts`."""
    h = blake2b(digest_size=8)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "big") / 2**64


@dataclass(frozen=True, slots=True)
class Outcome:
    good: bool
    text: str
    finish: str  # stop | length


class Skills:
    def __init__(self) -> None:
        self.table = {model: dict(skills) for model, skills in DEFAULT_SKILLS.items()}
        self.tasks: dict[str, str] = {}   # prompt text (stripped) -> kind

    def kind_of(self, prompt: str) -> str | None:
        return self.tasks.get(prompt.strip()) if self.tasks else None

    def good(self, model: str, kind: str, prompt: str) -> bool | None:
        skill = self.table.get(model, {}).get(kind)
        if skill is None:
            return None
        key = prompt.strip()
        own = unit("own", model, kind, key) >= SHARED   # this model's draw instead of the shared one
        draw = unit("draw", model, kind, key) if own else unit("difficulty", kind, key)
        return draw < skill

    def outcome(self, model: str, prompt: str) -> Outcome | None:
        kind = self.kind_of(prompt)
        good = None if kind is None else self.good(model, kind, prompt)
        if good is None:
            return None
        key = prompt.strip()
        if not good and unit("shows", model, key) < DETECTABLE:
            if unit("how", model, key) < 0.5:
                return Outcome(False, REFUSAL, "stop")
            return Outcome(False, _text(model, kind, key, cut=True), "length")
        return Outcome(good, _text(model, kind, key, cut=False), "stop")


def _text(model: str, kind: str, prompt: str, *, cut: bool) -> str:
    low, high = LENGTHS[kind]
    target = low + int(unit("length", model, prompt) * (high - low))
    bank = SENTENCES[kind]
    start = int(unit("start", model, prompt) * len(bank))
    parts = [CODE_BLOCK] if kind == "code" else []
    words = sum(len(p.split()) for p in parts)
    i = start
    # Words stand in for tokens here (punctuation adds a few more under the simulator's count).
    while words < target:
        parts.append(bank[i % len(bank)])
        words += len(bank[i % len(bank)].split())
        i += 1
    text = " ".join(parts) if kind != "code" else parts[0] + "\n\n" + " ".join(parts[1:])
    if cut:
        text = " ".join(text.split(" ")[: max(3, len(text.split(" ")) // 3)])
    return text
