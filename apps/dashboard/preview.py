"""What a proposed cache threshold would do for a tenant, from its own recent traffic,
without serving anything (the staff console's preview).

Two kinds of recent lookups are replayed:

- Served semantic hits (the ledger keeps each one's similarity). A stricter threshold
  keeps only those at or above it (the share among the latest SAMPLE_HITS, applied to
  all of them); a hit the tenant's feedback called wrong counts as a wrong hit.
- Misses, through the cache entries they left: every stored entry is the prompt of a
  lookup that missed, with the answer the provider then gave. For the tenant's latest
  entries the real hit rule (apps.cache.decision.decide) is run again against the
  entries that existed before each was written. A would-be hit is counted wrong when the
  cached answer it would have served disagrees with the provider's own answer to that
  prompt (fewer than half of their words in common): the cache would have served a
  different answer from the one the model gave.

The estimates scale the replayed share to all of the period's misses. They are
approximations: the ledger's similarity is the raw cosine (the rule adjusts it in crowded
regions), the sample is the latest entries, and feedback labels only the hits a tenant
judged.
"""

import re
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import connection
from django.utils import timezone

from apps.billing.models import CallRecord
from apps.cache.decision import Candidate, decide

from .selectors import judged_wrong_hits, overview, period_of

SAMPLE = 200         # cache entries replayed
SAMPLE_HITS = 5000   # latest served semantic hits whose similarity is read
DAYS = 7

_REPLAY = """
SELECT e.id, e.embedding::text, e.response->>'content', n.id, n.sim, n.embedding::text, n.neighbour_stat,
       n.response->>'content'
FROM (SELECT id, context_key, scope, embedding, created_at, response FROM cache_entry
      WHERE tenant_id = %(tenant)s ORDER BY created_at DESC LIMIT %(sample)s) AS e
CROSS JOIN LATERAL (
  SELECT c.id, 1 - (c.embedding <=> e.embedding) AS sim, c.embedding, c.neighbour_stat, c.response
  FROM cache_entry c
  WHERE c.tenant_id = %(tenant)s AND c.context_key = e.context_key AND c.scope = e.scope
    AND c.created_at < e.created_at
  ORDER BY c.embedding <=> e.embedding LIMIT 20) AS n
"""


@dataclass(frozen=True)
class Preview:
    threshold: float
    current: float
    lookups: int
    exact: int
    semantic: int                 # served in the period
    semantic_kept: int            # of those, still served at `threshold`
    wrong_kept: int               # of those kept, judged wrong by feedback
    replayed: int                 # misses replayed
    replay_hits_now: int          # replayed misses the current threshold would serve now
    replay_hits: int              # ... and the proposed one
    replay_wrong: int             # ... of which the cached answer disagrees with the model's
    misses: int

    @property
    def new_hits(self) -> float:
        if not self.replayed:
            return 0.0
        return max(self.replay_hits - self.replay_hits_now, 0) / self.replayed * self.misses

    @property
    def new_wrong(self) -> float:
        extra = max(self.replay_hits - self.replay_hits_now, 0)
        return self.new_hits * (self.replay_wrong / self.replay_hits if self.replay_hits and extra else 0.0)

    @property
    def hit_rate(self) -> float | None:
        return (self.exact + self.semantic_kept + self.new_hits) / self.lookups if self.lookups else None

    @property
    def current_hit_rate(self) -> float | None:
        return (self.exact + self.semantic) / self.lookups if self.lookups else None

    @property
    def wrong_rate(self) -> float | None:
        served = self.semantic_kept + self.new_hits
        return (self.wrong_kept + self.new_wrong) / served if served else None


def _vector(text: str) -> np.ndarray:
    return np.array(text[1:-1].split(","), dtype=np.float32)


_WORD = re.compile(r"\w+")


def _disagree(a: str | None, b: str | None) -> bool:
    words_a, words_b = set(_WORD.findall((a or "").lower())), set(_WORD.findall((b or "").lower()))
    if not words_a and not words_b:
        return False
    return len(words_a & words_b) / len(words_a | words_b) < 0.5


def _replay(tenant, threshold: float, current: float) -> tuple[int, int, int, int]:
    with connection.cursor() as cursor:
        cursor.execute(_REPLAY, {"tenant": tenant.pk, "sample": SAMPLE})
        rows = cursor.fetchall()
    lookups: dict[int, tuple[np.ndarray, str, list]] = {}
    for entry_id, vec, answer, cand_id, sim, cand_vec, radius, cand_answer in rows:
        found = lookups.setdefault(entry_id, (_vector(vec), answer, []))
        found[2].append((Candidate(cand_id, float(sim), _vector(cand_vec), radius), cand_answer))
    hits_now = hits = wrong = 0
    for vector, answer, candidates in lookups.values():
        answers = {c.entry_id: a for c, a in candidates}
        pool = [c for c, _ in candidates]
        hits_now += decide(vector, pool, current) is not None
        chosen = decide(vector, pool, threshold)
        if chosen is not None:
            hits += 1
            wrong += _disagree(answers[chosen.entry_id], answer)
    # Entries with no earlier neighbour (the first in their context) were replayed too: misses.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM cache_entry WHERE tenant_id = %s LIMIT %s) AS s",
                       [tenant.pk, SAMPLE])
        replayed = cursor.fetchone()[0]
    return replayed, hits_now, hits, wrong


def threshold_preview(*, tenant, threshold: float, current: float) -> Preview:
    period = period_of(key="custom", start=(timezone.now() - timedelta(days=DAYS)).date(), end=timezone.now().date())
    numbers = overview(tenant=tenant, period=period)
    hits = CallRecord.objects.for_tenant(tenant).filter(created_at__gte=period.start, cache="semantic")
    kept, judged = numbers.semantic, judged_wrong_hits(tenant=tenant, since=period.start)
    if threshold > current:
        # The share of the latest served hits at or above the new threshold, applied to all.
        latest = list(hits.order_by("-created_at").values_list("cache_similarity", flat=True)[:SAMPLE_HITS])
        kept = round(numbers.semantic * sum((s or 0) >= threshold for s in latest) / len(latest)) if latest else 0
        judged = judged.filter(cache_similarity__gte=threshold)
    replayed, hits_now, replay_hits, replay_wrong = _replay(tenant, threshold, current)
    return Preview(
        threshold=threshold, current=current, lookups=numbers.lookups, exact=numbers.exact,
        semantic=numbers.semantic, semantic_kept=kept, wrong_kept=judged.count(), replayed=replayed,
        replay_hits_now=hits_now, replay_hits=replay_hits, replay_wrong=replay_wrong,
        misses=numbers.lookups - numbers.hits)
