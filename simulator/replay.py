"""Replay mode: recorded answers of real models, for benchmarks that measure quality.

`python -m simulator --replay DIR` (or AKA_SIMULATOR_REPLAY=DIR) loads every `*.jsonl`
file of DIR, one prompt per line in the format of `shared/data/routellm`:

    {"id", "dataset", "prompt", "strong_correct", "weak_correct",
     "strong_response", "weak_response", ...}

with optional `strong_model` / `weak_model` (default: the RouteLLM pair below). When the
last user message of a request is one of these prompts (surrounding white space ignored)
and the request names one of the two models, that model answers with its recorded text,
at its catalog profile's pace like any answer. A prompt recorded without answer texts
(MMLU: the models answered with one token) is answered with one letter: both models
answer the same letter when both were right, another one when only one was; the letter
is drawn from a hash of the prompt, NOT the real key (the data does not keep it), so the
correctness rides on the side, at `POST /_sim/verdict`. Other models, and prompts not in
the data, get the simulator's ordinary answers. A prompt that occurs twice in the data
keeps its first row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from .skills import unit

STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mixtral-8x7b-instruct-v0.1"
LETTERS = "ABCD"


@dataclass(frozen=True, slots=True)
class Recording:
    id: str
    dataset: str
    prompt: str
    correct: dict[str, bool]          # model id -> answered correctly
    responses: dict[str, str | None]  # model id -> recorded answer text (None: not kept)

    def answer(self, model: str) -> str:
        text = self.responses.get(model)
        if text is not None:
            return text
        key = int(unit(self.prompt) * len(LETTERS))
        if self.correct[model]:
            return LETTERS[key]
        return LETTERS[(key + 1 + int(unit(self.prompt, model) * (len(LETTERS) - 1))) % len(LETTERS)]


class ReplayBook:
    """The recordings of a data directory, by prompt text."""

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = str(directory) if directory else ""
        self.by_prompt: dict[str, Recording] = {}
        self.duplicates = 0
        if directory:
            files = sorted(Path(directory).glob("*.jsonl"))
            if not files:
                raise FileNotFoundError(f"no *.jsonl files in replay directory {directory}")
            for path in files:
                self._load(path)

    def _load(self, path: Path) -> None:
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                    strong, weak = row.get("strong_model") or STRONG_MODEL, row.get("weak_model") or WEAK_MODEL
                    recording = Recording(
                        id=str(row["id"]), dataset=str(row.get("dataset") or path.stem), prompt=row["prompt"],
                        correct={strong: bool(row["strong_correct"]), weak: bool(row["weak_correct"])},
                        responses={strong: row.get("strong_response"), weak: row.get("weak_response")})
                except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                    raise ValueError(f"{path}:{number}: not a replay row ({exc})") from exc
                key = recording.prompt.strip()
                if key in self.by_prompt:
                    self.duplicates += 1
                else:
                    self.by_prompt[key] = recording

    def find(self, model: str, prompt: str) -> Recording | None:
        """The recording of `prompt`, when `model` is one of its models."""
        found = self.by_prompt.get(prompt.strip()) if self.by_prompt else None
        return found if found is not None and model in found.correct else None

    def summary(self) -> dict:
        datasets: dict[str, int] = {}
        for recording in self.by_prompt.values():
            datasets[recording.dataset] = datasets.get(recording.dataset, 0) + 1
        return {"directory": self.directory, "prompts": len(self.by_prompt), "datasets": datasets,
                "duplicates_skipped": self.duplicates}


def book_from_env(directory: str | None) -> ReplayBook:
    return ReplayBook(directory if directory is not None else os.environ.get("AKA_SIMULATOR_REPLAY") or None)
