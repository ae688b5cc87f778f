"""How good a model's answer to a prompt is likely to be: a Beta posterior per model,
from a global prior for the prompt's task class (the cold start) updated with the
tenant's own labelled answers to similar prompts (nearest neighbours over prompt
embeddings, weighted by similarity). Multiple-choice questions get a finer prior: their
subjects' rates, by how likely each subject is (classify.subject_rates). Pure
arithmetic on what apps.routing.store fetched: a few microseconds."""

import random
from dataclasses import dataclass

import numpy as np

from .classify import CHOICE, CODE, MATH, OTHER, SUPPORT, WRITING, subject_rates

# P(a good answer) per task class for a cheap and a strong model, before any label.
# Math and multiple choice are the published rates of a cheap and a strong model on
# GSM8K and MMLU (Mixtral 8x7B and GPT-4, RouteLLM's data); the others are our own
# conservative guesses, chosen so that an unknown tenant's support and writing prompts
# start on the cheap model and the rest on the strong one at the default 95% floor.
PRIORS = {
    MATH: (0.65, 0.85),
    CHOICE: (0.68, 0.80),
    CODE: (0.70, 0.88),
    WRITING: (0.89, 0.92),
    SUPPORT: (0.92, 0.94),
    OTHER: (0.80, 0.88),
}
# The prior counts as this many labelled answers: a few labels on close neighbours move it.
PRIOR_WEIGHT = 4.0
# Neighbours closer than this (cosine similarity) count, with weight rising to 1 at identity:
# all-MiniLM-L6-v2 puts paraphrases around 0.7-0.95 and merely related prompts below 0.5.
MIN_SIMILARITY = 0.5


@dataclass(frozen=True, slots=True)
class Neighbour:
    model: str
    good: float          # 0 (bad) .. 1 (good)
    similarity: float


@dataclass(frozen=True, slots=True)
class Belief:
    """Beta(alpha, beta) over P(the model's answer is good)."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def sample(self, rng: random.Random) -> float:
        return rng.betavariate(self.alpha, self.beta)


def weight(similarity: float) -> float:
    if similarity <= MIN_SIMILARITY:
        return 0.0
    return ((similarity - MIN_SIMILARITY) / (1.0 - MIN_SIMILARITY)) ** 2


def priors(task: str, vector: np.ndarray | None = None) -> tuple[float, float, str]:
    """(cheap rate, strong rate, the class they are of) before any label of the tenant's."""
    if task == CHOICE and vector is not None:
        return subject_rates(vector)
    return *PRIORS.get(task, PRIORS[OTHER]), task


def belief(*, model: str, prior: float, neighbours: list[Neighbour]) -> Belief:
    alpha, beta = PRIOR_WEIGHT * prior, PRIOR_WEIGHT * (1.0 - prior)
    for n in neighbours:
        if n.model == model:
            w = weight(n.similarity)
            alpha += w * n.good
            beta += w * (1.0 - n.good)
    return Belief(alpha, beta)
