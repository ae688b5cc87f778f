"""The semantic cache as the gateway uses it: the tenant's settings (a per-process
snapshot), whether a request may use the cache, the lookup (exact, then semantic), and
remembering a fresh answer after the response. Also the one write of those settings.

Every function takes the tenant (through the plan) and passes it to the store; entries
never cross tenants, scopes or context keys.
"""

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from apps.core import metrics
from apps.core.lifecycle import on_shutdown
from apps.core.llm import ChatRequest, ChatResult, Usage
from apps.core.loops import PerLoop
from apps.core.snapshots import Snapshots
from apps.tenants.keyauth import Principal

from . import store, verifier
from .decision import UPDATE_RATE, Candidate, entry_statistic, ranked
from .embedder import batcher
from .keys import context_key, exact_key, last_user_turn
from .models import CacheSettings
from .selectors import cache_settings_for

log = logging.getLogger(__name__)

HIGH_TEMPERATURE = 1.0


@dataclass(frozen=True, slots=True)
class Config:
    """A tenant's cache settings as the hot path sees them (fields of models.CacheSettings)."""

    enabled: bool
    threshold: float
    target_wrong_hit_rate: float | None
    ttl_seconds: int
    user_scope: bool
    tool_calls: bool
    high_temperature: bool
    generation: int


def _load_config(tenant_id: int) -> Config:
    row = cache_settings_for(tenant=tenant_id)
    return Config(**{f.name: getattr(row, f.name) for f in fields(Config)})


_configs = Snapshots(_load_config, lambda: settings.AKA_KEY_CACHE_TTL)


async def snapshot(tenant_id: int) -> Config:
    """The tenant's settings as this process last read them, at most AKA_KEY_CACHE_TTL
    seconds ago (as with its key, a change reaches every process within that time)."""
    return await _configs.aget(tenant_id)


@transaction.atomic
def cache_settings_update(*, tenant, changes: dict, new_generation: bool = False) -> CacheSettings:
    """Applies (and validates) changed settings; the tenant's first change creates its row.
    This process sees them at once, the others with their next snapshot. The generation
    moves on when the cache is turned off, and with `new_generation` (a purge is about to
    delete entries in the caller's transaction): the row lock taken here orders that against
    every cache write, which checks the generation (store.INSERT), and the tenant's
    generation lock taken first orders it against writes when there is no row yet."""
    with connection.cursor() as cursor:
        cursor.execute(store.PURGE_LOCK, {"tenant": getattr(tenant, "pk", tenant)})
    row, _ = CacheSettings.objects.for_tenant(tenant).select_for_update().get_or_create(tenant=tenant)
    was_enabled = row.enabled
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean()
    fields = list(changes)
    if new_generation or (was_enabled and not row.enabled):
        row.generation += 1   # an answer looked up before is not stored after
        fields.append("generation")
    row.save(update_fields=fields)
    transaction.on_commit(lambda: _configs.forget(row.tenant_id))
    return row


@dataclass(frozen=True, slots=True)
class Plan:
    """A request the cache may serve and learn from."""

    tenant_id: int
    api_key_id: str
    scope: str
    context: str
    exact: str
    prompt: str
    threshold: float
    target: float | None   # the tenant's target wrong-hit rate; None: the threshold alone
    ttl_seconds: int
    tool_calls: bool
    generation: int        # the tenant's cache generation when looked up: see store.INSERT
    read: bool = True    # `Cache-Control: no-cache` / `x-aka-cache: refresh` skip reading, still write
    write: bool = True   # `x-aka-cache: readonly` reads without adding entries

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.ttl_seconds)


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str            # exact | semantic
    entry_id: int
    similarity: float
    result: ChatResult


@dataclass(frozen=True, slots=True)
class Miss:
    vector: np.ndarray | None
    # The nearest entries as (id, similarity): the new entry's statistic comes from them,
    # and theirs move when it is written.
    neighbours: tuple[tuple[int, float], ...]


def bypassed(headers) -> bool:
    """`Cache-Control: no-store` or `x-aka-cache: off` skip both reading and writing."""
    return "no-store" in headers.get("cache-control", "").lower() or headers.get("x-aka-cache", "").lower() == "off"


def refreshing(headers) -> bool:
    """`Cache-Control: no-cache` (or `x-aka-cache: refresh`): ask the provider again and
    store the fresh answer in place of any cached one."""
    return "no-cache" in headers.get("cache-control", "").lower() or headers.get("x-aka-cache", "").lower() == "refresh"


def plan_for(req: ChatRequest, principal: Principal, config: Config, headers, route: str) -> Plan | None:
    """The cache plan for this request under the tenant's settings (`snapshot`), or None when
    it must not touch the cache."""
    if not config.enabled or bypassed(headers):
        return None
    if req.logprobs:
        return None   # an entry keeps no logprobs to serve
    if req.temperature is not None and req.temperature > HIGH_TEMPERATURE and not config.high_temperature:
        return None
    turn = last_user_turn(req)
    if turn is None:
        return None
    scope = ""
    if config.user_scope or headers.get("x-aka-cache-scope", "").lower() == "user":
        if not req.user:
            return None  # a per-user cache needs to know the user
        # Hashed: a user id is the client's text (any length, even NUL), and a column's value.
        scope = "user:" + hashlib.sha256(req.user.encode()).hexdigest()[:32]
    context = context_key(req, route)
    prompt = turn[1]
    return Plan(tenant_id=principal.tenant_id, api_key_id=principal.api_key_id, scope=scope, context=context,
                exact=exact_key(context, scope, prompt), prompt=prompt, threshold=config.threshold,
                target=config.target_wrong_hit_rate,
                ttl_seconds=config.ttl_seconds, tool_calls=config.tool_calls, generation=config.generation,
                read=not refreshing(headers), write=headers.get("x-aka-cache", "").lower() != "readonly")


def _result(entry: store.Entry) -> ChatResult:
    response = entry.response
    usage = response.get("usage") or {}
    return ChatResult(id="", model=entry.model, content=response.get("content"), finish_reason=response["finish_reason"],
                      usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
                      tool_calls=response.get("tool_calls"), provider="cache", stop_sequence=response.get("stop_sequence"))


class ExactKeys:
    """The exact keys this process has stored or served lately (a bounded, oldest-first
    dict). A lookup whose key is not among them is most likely no exact hit, so its
    embedding starts at once and runs beside the exact lookup's round trip instead of
    after it; a key among them is looked up first, so an exact hit does not pay for an
    embedding it will not use. A key stored by another process costs one needless
    embedding here when it first hits."""

    LIMIT = 16_384

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def add(self, key: str) -> None:
        self.keys.pop(key, None)
        self.keys[key] = None
        if len(self.keys) > self.LIMIT:
            del self.keys[next(iter(self.keys))]


exact_keys = ExactKeys()


def serving(prompt: str, vector: np.ndarray, candidates: list[Candidate], prompts: Callable[[], dict[int, str]], *,
            threshold: float, target: float | None) -> tuple[list[Candidate], bool]:
    """The hit rule: the entries a lookup of `prompt` (embedded as `vector`) may serve, in
    the order it tries them, and whether any reached the first stage's `threshold` (none
    served then is a refusal, not a miss). Without a `target` the first stage's choice;
    with one, the verifier's pick of its best few (`prompts()`: the cached prompts by entry
    id, asked for only then). The staff console's preview replays it."""
    choices = ranked(candidates, threshold, 1 if target is None else verifier.CANDIDATES)
    if target is None or not choices:
        return [c for c, _ in choices], bool(choices)
    texts = prompts()
    return verifier.choose(prompt, [(c, adjusted, texts[c.entry_id]) for c, adjusted in choices], vector=vector,
                           candidates=candidates, target=target), True


def _servable(entry: store.Entry | None, plan: Plan) -> bool:
    """An entry holding tool calls is served only while the tenant caches them: one stored
    before it opted out is not."""
    return entry is not None and (plan.tool_calls or not entry.response.get("tool_calls"))


async def lookup(plan: Plan) -> Hit | Miss:
    embedding = None
    if plan.read:
        if plan.exact not in exact_keys:
            embedding = batcher().embed(plan.prompt)
        try:
            entry = await store.exact(tenant_id=plan.tenant_id, context_key=plan.context, exact_key=plan.exact,
                                      ttl=plan.ttl)
        except BaseException:
            if embedding is not None:
                embedding.cancel()
            raise
        if _servable(entry, plan):
            if embedding is not None:
                embedding.cancel()   # its batch still runs; the vector is dropped
            exact_keys.add(plan.exact)
            metrics.CACHE.labels("exact").inc()
            return Hit("exact", entry.id, 1.0, _result(entry))
    vector = await (embedding or batcher().embed(plan.prompt))
    rows = await store.nearest(tenant_id=plan.tenant_id, scope=plan.scope, context_key=plan.context, vector=vector,
                               k=settings.AKA_CACHE_CANDIDATES, ttl=plan.ttl)
    candidates = [Candidate(entry_id=r.id, similarity=r.similarity, embedding=r.embedding,
                            neighbour_similarity=r.neighbour_stat) for r in rows]
    served, reached = serving(plan.prompt, vector, candidates, lambda: {r.id: r.prompt_text for r in rows},
                              threshold=plan.threshold, target=plan.target) if plan.read else ([], False)
    for chosen in served:
        # The nearest candidate came with its answer; another one's is read now.
        entry = rows[0].entry if rows[0].id == chosen.entry_id else await store.answer(
            tenant_id=plan.tenant_id, scope=plan.scope, context_key=plan.context, entry_id=chosen.entry_id,
            ttl=plan.ttl)
        if _servable(entry, plan):
            metrics.CACHE.labels("semantic").inc()
            return Hit("semantic", entry.id, chosen.similarity, _result(entry))
    # Refused: the second stage said none fits. Miss: none reached the threshold, or every
    # accepted entry was purged or demoted since the candidates were read, or holds tool calls.
    metrics.CACHE.labels("refused" if reached and not served else "miss").inc()
    return Miss(vector, tuple((r.id, r.similarity) for r in rows))


def cacheable(result: ChatResult, plan: Plan) -> bool:
    """Only finished answers; tool calls only when the tenant opted in."""
    if result.finish_reason not in ("stop", "tool_calls"):
        return False
    if result.tool_calls:
        return plan.tool_calls and result.finish_reason == "tool_calls"
    # Postgres text and jsonb cannot hold NUL characters.
    return result.finish_reason == "stop" and bool(result.content) and "\x00" not in result.content


async def remember(plan: Plan, miss: Miss, result: ChatResult) -> int | None:
    """Stores a fresh answer (after the response was sent). Returns the new entry's id."""
    if not plan.write or miss.vector is None or not cacheable(result, plan):
        return None
    response = {"content": result.content, "tool_calls": result.tool_calls, "finish_reason": result.finish_reason,
                "stop_sequence": result.stop_sequence,
                "usage": {"prompt_tokens": result.usage.prompt_tokens,
                          "completion_tokens": result.usage.completion_tokens}}
    exact_keys.add(plan.exact)   # its next repeat in this process is an exact hit
    return await store.insert(
        tenant_id=plan.tenant_id, scope=plan.scope, context_key=plan.context, exact_key=plan.exact,
        api_key_id=plan.api_key_id, prompt_text=plan.prompt, vector=miss.vector,
        neighbour_stat=entry_statistic(miss.vector, [similarity for _, similarity in miss.neighbours]),
        response=response, model=result.model, ttl=plan.ttl, now=datetime.now(UTC), generation=plan.generation,
        neighbours=dict(miss.neighbours), update_rate=UPDATE_RATE)


class HitCounter:
    """Hit counts are summed in memory and written about once a second: a popular entry
    hit by many concurrent calls would otherwise serialize them all on its row lock.
    (A crash loses at most a second of counts; they are statistics, not billing: the
    ledger has every hit.)"""

    FLUSH_EVERY = 1.0

    def __init__(self) -> None:
        self.counts: dict[tuple[int, str, int], int] = {}
        self.flusher: asyncio.Task | None = None

    def add(self, plan: Plan, entry_id: int) -> None:
        key = (plan.tenant_id, plan.context, entry_id)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.FLUSH_EVERY)
        await self.flush()

    async def flush(self) -> None:
        counts, self.counts = self.counts, {}
        if counts:
            try:
                await store.add_hits(counts)
            except Exception:
                log.exception("could not write %d cache hit counts", len(counts))


hit_counter = PerLoop(HitCounter)


@on_shutdown
async def flush_hit_counts() -> None:
    for counter in hit_counter.drain():
        await counter.flush()




async def entry_demote(*, tenant_id: int, entry_id: int) -> bool:
    """Stops serving an entry to paraphrases (a tenant said its answer was wrong for one);
    exact repeats of its own prompt may still hit. False if it was gone or already demoted."""
    return await store.demote(tenant_id=tenant_id, entry_id=entry_id)
