"""Calling a model with retries, backoff and an ordered fallback chain.

Per model: retryable failures (429, 5xx, connection errors) are retried with exponential
backoff, honouring Retry-After up to a cap; then the next model of the chain is tried.
A timeout skips straight to the next model (retrying a stall costs a whole timeout).
A request the upstream rejects as invalid is not retried anywhere.
Streams commit to a model once its first event has arrived: after that nothing falls back.
A routed call passes its `Circuits` (apps.routing.breaker.Probes): asked just before a
model's first attempt, a model they refuse is skipped untried, unless they refuse them all;
told when that attempt ends with neither an answer nor an error (cancelled), so that a
half-open probe it took goes to the next call at once.
"""

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from django.conf import settings

from apps.core import metrics
from apps.core.errors import ApiError
from apps.core.llm import ChatRequest, ChatResult, Usage

from .adapters import Adapter, adapter_for
from .catalog import ModelInfo
from .errors import UpstreamError

T = TypeVar("T")


class Circuits(Protocol):
    """A routed call's circuit breakers, as dispatch asks them."""

    def take(self, model_id: str) -> bool:
        """Whether the call may try the model now (taking its half-open probe if so)."""

    def give_back(self, model_id: str) -> None:
        """The model's first attempt ended with neither an answer nor an error."""


@dataclass
class Outcome:
    """What dispatch tried, for the ledger."""

    attempts: int = 0
    last_error: UpstreamError | None = None
    failed: list[str] = field(default_factory=list)   # the model of each attempt it failed (circuit breakers)


def chain_for(model: ModelInfo, catalog: dict[str, ModelInfo], needs: set[str]) -> list[ModelInfo]:
    """The model, then its fallbacks that exist and have every capability in `needs`."""
    chain, seen = [model], {model.id}
    for model_id in model.fallbacks:
        candidate = catalog.get(model_id)
        if candidate and candidate.id not in seen and needs <= candidate.capabilities:
            chain.append(candidate)
            seen.add(candidate.id)
    return chain


def _backoff(attempt: int, error: UpstreamError) -> float:
    if error.retry_after is not None:
        return min(error.retry_after, settings.AKA_MAX_RETRY_AFTER)
    return min(settings.AKA_RETRY_BASE_DELAY * (2**attempt) * (1 + random.random() / 2), settings.AKA_MAX_RETRY_AFTER)


async def _first_answer(chain: list[ModelInfo], outcome: Outcome, attempt: Callable[[ModelInfo], Awaitable[T]],
                        circuits: Circuits | None = None) -> T:
    """What `attempt(model)` answers for the first model of the chain that answers, each
    model's retryable failures retried with backoff; the last failure raised when none
    does. When `circuits` refuse every model (each one's half-open probe went to another
    call since the route was chosen), the chain is tried anyway, as a route whose whole
    pool is open is."""
    tried = False
    for model in chain:
        if circuits is not None and not circuits.take(model.id):
            continue
        tried = True
        for retry in range(settings.AKA_UPSTREAM_RETRIES + 1):
            outcome.attempts += 1
            try:
                answer = await attempt(model)
            except UpstreamError as error:
                failed(outcome, model, error)
            except asyncio.CancelledError:
                # Nothing learnt of the model: its probe, if this call took it, is free at
                # once. After a failed attempt it is not: that failure reports, and reopens it.
                if circuits is not None and retry == 0:
                    circuits.give_back(model.id)
                raise
            else:
                outcome.last_error = None
                return answer
            if not outcome.last_error.retryable or retry == settings.AKA_UPSTREAM_RETRIES:
                break
            await asyncio.sleep(_backoff(retry, outcome.last_error))
        if outcome.last_error.kind == "upstream_rejected":
            break
    if not tried and circuits is not None:
        return await _first_answer(chain, outcome, attempt)
    raise outcome.last_error


def failed(outcome: Outcome, model: ModelInfo, error: UpstreamError) -> None:
    """An attempt on `model` failed: opening it, or (a stream) after its first event."""
    outcome.last_error = error
    if error.kind != "upstream_rejected":   # the request's fault (too long, malformed), not the model's
        outcome.failed.append(model.id)
    metrics.UPSTREAM_ERRORS.labels(model.provider, error.kind).inc()


async def complete(req: ChatRequest, chain: list[ModelInfo], outcome: Outcome,
                   circuits: Circuits | None = None) -> ChatResult:
    return await _first_answer(chain, outcome, lambda model: adapter_for(model.provider).complete(req, model),
                               circuits)


async def open_stream(req: ChatRequest, chain: list[ModelInfo], outcome: Outcome,
                      circuits: Circuits | None = None):
    """(model, first event, rest of the events) from the first model that starts answering."""
    async def start(model: ModelInfo):
        events: AsyncIterator = adapter_for(model.provider).stream(req, model)
        try:
            return model, await anext(events), events
        except UpstreamError:
            await events.aclose()
            raise

    return await _first_answer(chain, outcome, start, circuits)


def cut_short(prompt_tokens: int, pieces: list[str]) -> Usage:
    """What a stream that did not finish (closed by us, or cut) is charged for: its input
    and the output received until then, one token per piece of text (as providers stream)."""
    return Usage(prompt_tokens, sum(1 for piece in pieces if piece))


async def embed(data: dict, chain: list[ModelInfo], outcome: Outcome) -> tuple[ModelInfo, dict, Usage]:
    """(model, OpenAI-shaped body, usage) of an embeddings call, with the same retries and
    fallbacks as chat."""
    async def call(model: ModelInfo):
        body, usage = await adapter_for(model.provider).embed(data, model)
        return model, body, usage

    return await _first_answer(chain, outcome, call)


def counter_for(model: ModelInfo) -> Adapter:
    """The adapter that counts `model`'s input tokens with its provider (no retries or
    fallbacks: the count is this model's); a 400 when the gateway has no counting endpoint
    for its provider (OpenAI's /v1/responses/input_tokens is not used yet, and another
    tokenizer's count would be wrong for it)."""
    adapter = adapter_for(model.provider)
    if not adapter.counts_tokens:
        raise ApiError(400, f"Token counting is not available for '{model.id}' through the gateway.",
                       code="unsupported_model", param="model")
    return adapter
