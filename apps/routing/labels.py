"""The tenant's labelled prompts in this process's memory: the predictor's nearest
neighbours as one matrix-vector product instead of a pgvector query per routed call
(1.4-1.5 ms of index scan at 1k-10k labels, bench/routing_decision.py).

PostgreSQL (routing_sample) stays the truth. Per tenant, a process keeps a copy of its
labelled rows: a row per prompt (its unit-length embedding, float32) and a column per
model (the label, NaN where that model has none). The copy is loaded off the hot path, one
load for all the calls that find it missing or stale (apps.core.snapshots), and a call
never waits for it: until it is there, or when the tenant has more labels than the
process's budget, the call reads its neighbours with the pgvector query as before.

How soon a label counts: a label written by this process (a judged draft, the client's
feedback) counts from the next call; one written by another process once this one has
reloaded, which is at most AKA_ROUTING_LABELS_TTL seconds plus one load after it was
written, for a tenant this process routes.

Memory: 1.5 KB per labelled prompt (384 float32) plus 4 bytes per model and label and the
prompt's request id, under AKA_ROUTING_MEMORY_MB for all tenants of a process together;
the least recently routed tenants make room for others. float16 would halve it, but
numpy has no fast float16 product: 42 ms instead of 0.3 ms at 10k prompts."""

import bisect
import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

import numpy as np
import threadpoolctl
from django.conf import settings
from django.db.models import BinaryField, F, Func

from apps.core.snapshots import Snapshots

from . import store
from .models import EMBEDDING_DIMENSIONS, RoutingSample
from .predictor import Neighbour

# A prompt's share of the budget: its embedding (the labels and request ids are small beside it).
PROMPT_BYTES = 4 * EMBEDDING_DIMENSIONS


@dataclass(frozen=True, slots=True)
class Label:
    """A label this process wrote, kept for the copies loaded before it was committed."""

    seq: int
    at: float            # time.monotonic() just after its commit
    request_id: str
    model: str
    good: float
    vector: np.ndarray


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32), so a dot product is the cosine similarity that
    pgvector's <=> is one minus."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


class TenantLabels:
    """One tenant's labelled prompts, grown in place as this process labels more."""

    def __init__(self, *, started: float, request_ids: list[str], models: list[str], vectors: np.ndarray,
                 goods: np.ndarray, fits: bool = True):
        self.started, self.fits, self.seen = started, fits, 0
        self.rows = {r: i for i, r in enumerate(request_ids)}
        self.columns = {m: j for j, m in enumerate(models)}
        self.models = list(models)
        self.size = len(request_ids)
        self.vectors, self.goods = vectors, goods       # (capacity, 384), (capacity, models)

    @classmethod
    def too_many(cls, started: float) -> "TenantLabels":
        """The mark of a tenant with more labels than the budget: routed by pgvector."""
        return cls(started=started, request_ids=[], models=[], vectors=np.empty((0, EMBEDDING_DIMENSIONS),
                   np.float32), goods=np.empty((0, 0)), fits=False)

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes + self.goods.nbytes

    def apply(self, label: Label) -> None:
        """The label as PostgreSQL now holds it (the same label again changes nothing)."""
        row = self.rows.get(label.request_id)
        if row is None:
            if self.size == len(self.vectors):
                self._grow(rows=self.size + self.size // 2 + 16)
            row = self.rows[label.request_id] = self.size
            self.vectors[row] = unit(label.vector)
            self.goods[row] = np.nan
            self.size += 1
        column = self.columns.get(label.model)
        if column is None:
            self._grow(columns=len(self.models) + 1)
            column = self.columns[label.model] = len(self.models)
            self.models.append(label.model)
        self.goods[row, column] = label.good

    def _grow(self, *, rows: int | None = None, columns: int | None = None) -> None:
        rows, columns = rows or len(self.vectors), columns or self.goods.shape[1]
        vectors = np.empty((rows, EMBEDDING_DIMENSIONS), np.float32)
        goods = np.full((rows, columns), np.nan)
        vectors[:self.size] = self.vectors[:self.size]
        goods[:self.size, :self.goods.shape[1]] = self.goods[:self.size]
        self.vectors, self.goods = vectors, goods

    def nearest(self, vector: np.ndarray, models: list[str], k: int) -> list[Neighbour]:
        """store.nearest's answer: the k labels of `models` on the prompts most similar to
        `vector`, most similar first (a prompt's labels share its similarity)."""
        columns = [(m, self.columns[m]) for m in models if m in self.columns]
        if not columns or not self.size or k <= 0:
            return []
        goods = self.goods[:self.size, [j for _, j in columns]]
        labelled = ~np.isnan(goods)
        similarity = self.vectors[:self.size] @ unit(vector)
        similarity[~labelled.any(axis=1)] = -np.inf     # prompts labelled only for models outside the pool
        top = np.argpartition(-similarity, k - 1)[:k] if self.size > k else np.arange(self.size)
        found = []
        for row in top[np.argsort(-similarity[top], kind="stable")]:
            if similarity[row] == -np.inf:
                break
            found += [Neighbour(model=m, good=float(goods[row, i]), similarity=float(similarity[row]))
                      for i, (m, _) in enumerate(columns) if labelled[row, i]]
            if len(found) >= k:
                break
        return found[:k]


def vectors_sent(raws: list[bytes]) -> np.ndarray:
    """Embeddings in pgvector's binary form (vector_send: a 4-byte header of dimensions and
    an unused field, then big-endian float4s) as rows; parsing the text of 10k embeddings
    would take longer than the query that reads them."""
    return np.frombuffer(b"".join(raws), dtype=">f4").reshape(len(raws), EMBEDDING_DIMENSIONS + 1)[:, 1:]


SENT = Func(F("embedding"), function="vector_send", output_field=BinaryField())


def _load(tenant_id: int) -> TenantLabels:
    """The tenant's labelled rows from PostgreSQL (on the ORM's thread)."""
    started = time.monotonic()
    _one_blas_thread()
    budget = settings.AKA_ROUTING_MEMORY_MB * 2**20 // PROMPT_BYTES
    labelled = RoutingSample.objects.for_tenant(tenant_id).filter(good__isnull=False)
    # Counted on the index before any embedding is read: an oversized tenant is found so
    # at every reload, and its rows (budget-sized) would only be thrown away.
    if labelled.order_by("id").values("id")[budget:budget + 1].exists():
        return TenantLabels.too_many(started)
    rows = list(labelled.annotate(sent=SENT).order_by("id").values_list("request_id", "model", "good", "sent"))
    prompts, models, raws = {}, {}, []
    for request_id, model, _, raw in rows:
        if request_id not in prompts:   # a call's answers share its prompt's embedding
            prompts[request_id] = len(prompts)
            raws.append(raw)
        models.setdefault(model, len(models))
    # Room for the labels this process writes before the next load, so that they rarely copy the matrix.
    capacity = len(prompts) + len(prompts) // 8 + 64
    vectors = np.empty((capacity, EMBEDDING_DIMENSIONS), np.float32)
    vectors[:len(prompts)] = unit(vectors_sent(raws))
    goods = np.full((capacity, len(models)), np.nan)
    for request_id, model, good, _ in rows:
        goods[prompts[request_id], models[model]] = good
    return TenantLabels(started=started, request_ids=list(prompts), models=list(models), vectors=vectors,
                        goods=goods)


@cache
def _one_blas_thread() -> None:
    """OpenBLAS splits a product over 10k prompts across threads, which on a busy 2-core
    worker wait for each other: 18 ms instead of 0.4 (an async worker is one thread)."""
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")


_copies: Snapshots[int, TenantLabels] = Snapshots(_load, lambda: settings.AKA_ROUTING_LABELS_TTL)
# Tenants whose copy this process holds, least recently routed first: each copy's bytes.
_held: OrderedDict[int, int] = OrderedDict()
_held_bytes = 0
# Per tenant with a copy or one loading: the labels this process wrote that a copy may lack,
# in the order written. Only ever this process's writes since its copy's load began.
_written: dict[int, list[Label]] = {}
_lock = threading.Lock()    # feedback labels are written on the ORM's thread
_seq = itertools.count(1)


def learned(*, tenant_id: int, request_id: str, model: str, good: float, vector: np.ndarray) -> None:
    """A label that PostgreSQL now holds (call it once committed): the tenant's copy in
    this process takes it before its next prediction."""
    with _lock:
        written = _written.get(tenant_id)
        if written is not None:   # else no copy, nor a load under way: the next load reads it
            written.append(Label(next(_seq), time.monotonic(), request_id, model, good, vector))


def _copy_of(tenant_id: int) -> TenantLabels | None:
    """The tenant's copy with every label this process wrote, or None while it loads or
    when the tenant has more labels than fit."""
    with _lock:
        written = _written.setdefault(tenant_id, [])
    copy = _copies.peek(tenant_id)
    if copy is None:
        return None
    with _lock:
        if not copy.fits:
            written.clear()
            return None
        # What this process wrote before the copy's load began, the copy read from PostgreSQL.
        del written[:bisect.bisect_left(written, copy.started, key=lambda label: label.at)]
        news = written[bisect.bisect_right(written, copy.seen, key=lambda label: label.seq):]
    for label in news:
        copy.apply(label)
        copy.seen = label.seq
    _hold(tenant_id, copy.nbytes)
    return copy


def _hold(tenant_id: int, nbytes: int) -> None:
    """Counts the copy in the process's budget, dropping the least recently routed
    tenants' copies while they exceed it."""
    global _held_bytes
    _held_bytes += nbytes - _held.get(tenant_id, 0)
    _held[tenant_id] = nbytes
    _held.move_to_end(tenant_id)
    while _held_bytes > settings.AKA_ROUTING_MEMORY_MB * 2**20 and len(_held) > 1:
        evicted, freed = _held.popitem(last=False)
        _held_bytes -= freed
        _copies.forget(evicted)
        with _lock:
            _written.pop(evicted, None)


async def nearest(*, tenant_id: int, vector: np.ndarray, models: list[str], k: int) -> list[Neighbour]:
    """The labelled nearest neighbours of a prompt among the pool's models: from this
    process's copy of the tenant's labels, or by the pgvector query while there is none."""
    copy = _copy_of(tenant_id)
    if copy is None:
        return await store.nearest(tenant_id=tenant_id, vector=vector, models=models, k=k)
    return copy.nearest(vector, models, k)


async def load(*, tenant_id: int) -> TenantLabels:
    """Waits for the tenant's copy as it is now in PostgreSQL (benches and tests: a routed
    call never waits for one)."""
    _copies.forget(tenant_id)
    _copy_of(tenant_id)
    await _copies.aget(tenant_id)
    return _copy_of(tenant_id)


def forget_all() -> None:
    """Drops every copy (tests)."""
    global _held_bytes
    _copies.clear()
    _held.clear()
    _held_bytes = 0
    with _lock:
        _written.clear()
