"""What a proposed cache rule (a similarity threshold and a target wrong-hit rate) would
do for a tenant, from its own recent traffic, without serving anything (the staff
console's preview).

Two kinds of recent lookups are replayed:

- Misses, through the cache entries they left: every stored entry is the prompt of a
  lookup that missed, with the answer the provider then gave. For the tenant's latest
  entries the real hit rule (apps.cache.services.serving: the first stage, then the
  verifier at the target) is run again, under the current rule and the proposed one,
  against the entries that existed before each was written. A would-be hit is counted
  wrong when the cached answer it would have served disagrees with the provider's own
  answer to that prompt (fewer than half of their words in common): the cache would have
  served a different answer from the one the model gave.
- Served semantic hits. The ledger keeps each one's similarity, not its prompt: a stricter
  threshold keeps those at or above it (the share among the latest SAMPLE_HITS, applied
  to all of them); a stricter target keeps the share of the replayed lookups that the
  proposed threshold with the current target serves which the proposed rule still serves
  (measured there so that the threshold's own effect is not counted twice; with no such
  replayed hit it is unknown, and the hits are counted as kept). A target under the
  calibration's floor serves no semantic hit. A hit the tenant's feedback called wrong
  counts as a wrong hit while its similarity passes the threshold, and in the share a
  stricter target keeps.

The estimates scale the replayed share to all of the period's misses. They are
approximations: the ledger's similarity is the raw cosine (the rule adjusts it in crowded
regions), the sample is the latest entries, and feedback labels only the hits a tenant
judged.
"""

import re
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import psycopg
from django.db import connection
from django.utils import timezone
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

from apps.billing.models import CallRecord
from apps.cache.decision import Candidate
from apps.cache.services import serving
from apps.cache.verifier import cutoff_for

from .selectors import judged_wrong_hits, overview, period_of

SAMPLE = 200         # cache entries replayed
SAMPLE_HITS = 5000   # latest served semantic hits whose similarity is read
DAYS = 7

_REPLAY = """
SELECT e.id, e.prompt_text, e.embedding, e.response->>'content', n.id, n.sim, n.embedding,
       n.neighbour_stat, n.response->>'content', n.prompt_text
FROM (SELECT id, context_key, scope, prompt_text, embedding, created_at, response FROM cache_entry
      WHERE tenant_id = %(tenant)s ORDER BY created_at DESC LIMIT %(sample)s) AS e
CROSS JOIN LATERAL (
  SELECT c.id, 1 - (c.embedding <=> e.embedding) AS sim, c.embedding, c.neighbour_stat, c.response, c.prompt_text
  FROM cache_entry c
  WHERE c.tenant_id = %(tenant)s AND c.context_key = e.context_key AND c.scope = e.scope
    AND c.created_at < e.created_at AND c.expires_at > now() AND c.demoted_at IS NULL
  ORDER BY c.embedding <=> e.embedding LIMIT 20) AS n
"""


@dataclass(frozen=True)
class Rule:
    """A tenant's hit rule: CacheSettings.threshold and target_wrong_hit_rate (None: the
    threshold alone)."""

    threshold: float
    target: float | None

    def stricter_target(self, than: "Rule") -> bool:
        return self.target is not None and (than.target is None or self.target < than.target)


@dataclass(frozen=True)
class Preview:
    rule: Rule
    current: Rule
    lookups: int
    exact: int
    semantic: int                 # served in the period
    semantic_kept: int            # of those, still served by `rule` (estimate)
    wrong_kept: int               # of those, judged wrong by feedback (estimate)
    target_share: float | None    # the share of served hits a stricter target keeps (None: unknown, counted as 1)
    replayed: int                 # misses replayed
    replay_hits_now: int          # replayed misses the current rule would serve now
    replay_hits: int              # ... and the proposed one
    replay_kept: int              # ... both
    replay_wrong: int             # of the proposed rule's, those whose cached answer disagrees with the model's
    replay_new_wrong: int         # ... among those the current rule does not serve
    misses: int

    @property
    def new_hits(self) -> float:
        if not self.replayed:
            return 0.0
        return (self.replay_hits - self.replay_kept) / self.replayed * self.misses

    @property
    def new_wrong(self) -> float:
        new = self.replay_hits - self.replay_kept
        return self.new_hits * self.replay_new_wrong / new if new else 0.0

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


_WORD = re.compile(r"\w+")


def _disagree(a: str | None, b: str | None) -> bool:
    words_a, words_b = set(_WORD.findall((a or "").lower())), set(_WORD.findall((b or "").lower()))
    if not words_a and not words_b:
        return False
    return len(words_a & words_b) / len(words_a | words_b) < 0.5


def _replay(tenant, rules: list[Rule]) -> tuple[int, list[list[tuple[bool, bool]]]]:
    """The misses replayed, and per replayed entry with an earlier neighbour, under each of
    `rules`: (served, the answer served disagrees with the model's)."""
    # The vectors in binary, loaded by pgvector's loader on this cursor alone (a server-side
    # binding one: Django's client-side cursors read text only). Sent as text and parsed
    # here, they were most of the preview's time: 1.1-1.3 s at 2,000 entries, 0.3-0.4 s in binary.
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        register_vector_info(cursor, TypeInfo.fetch(connection.connection, "vector"))
        cursor.execute(_REPLAY, {"tenant": tenant.pk, "sample": SAMPLE}, binary=True)
        rows = cursor.fetchall()
    lookups: dict[int, tuple[str, np.ndarray, str, list]] = {}
    for entry_id, prompt, vec, answer, cand_id, sim, cand_vec, radius, cand_answer, cand_prompt in rows:
        found = lookups.setdefault(entry_id, (prompt, vec.to_numpy(), answer, []))
        found[3].append((Candidate(cand_id, float(sim), cand_vec.to_numpy(), radius), cand_answer, cand_prompt))
    outcomes = []
    for prompt, vector, answer, candidates in lookups.values():
        answers = {c.entry_id: a for c, a, _ in candidates}
        pool = [c for c, _, _ in candidates]

        def prompts(candidates=candidates) -> dict[int, str]:
            return {c.entry_id: p for c, _, p in candidates}

        outcome = {}
        for rule in dict.fromkeys(rules):   # rules often repeat (only the target or the threshold changes)
            served, _ = serving(prompt, vector, pool, prompts, threshold=rule.threshold, target=rule.target)
            outcome[rule] = bool(served), bool(served) and _disagree(answers[served[0].entry_id], answer)
        outcomes.append([outcome[rule] for rule in rules])
    # Entries with no earlier neighbour (the first in their context) were replayed too: misses.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM cache_entry WHERE tenant_id = %s LIMIT %s) AS s",
                       [tenant.pk, SAMPLE])
        replayed = cursor.fetchone()[0]
    return replayed, outcomes


def rule_preview(*, tenant, rule: Rule, current: Rule) -> Preview:
    period = period_of(key="custom", start=(timezone.now() - timedelta(days=DAYS)).date(), end=timezone.now().date())
    numbers = overview(tenant=tenant, period=period)
    hits = CallRecord.objects.for_tenant(tenant).filter(created_at__gte=period.start, cache="semantic")
    share, judged = 1.0, judged_wrong_hits(tenant=tenant, since=period.start)
    if rule.threshold > current.threshold:
        # The share of the latest served hits at or above the new threshold, applied to all.
        latest = list(hits.order_by("-created_at").values_list("cache_similarity", flat=True)[:SAMPLE_HITS])
        share = sum((s or 0) >= rule.threshold for s in latest) / len(latest) if latest else 0.0
        judged = judged.filter(cache_similarity__gte=rule.threshold)
    # Replayed under the current rule, the proposed threshold with the current target, and the proposed rule.
    replayed, outcomes = _replay(tenant, [current, Rule(rule.threshold, current.target), rule])
    target_share: float | None = 1.0
    if rule.stricter_target(current):
        before = [o for o in outcomes if o[1][0]]   # served at the proposed threshold with the current target
        if cutoff_for(rule.target) == 0.0:   # under the calibration's floor: exact repeats only
            target_share = 0.0
        elif before:
            target_share = sum(o[2][0] for o in before) / len(before)
        else:
            target_share = None   # no evidence
    by_target = 1.0 if target_share is None else target_share
    semantic_kept = round(numbers.semantic * share * by_target)
    return Preview(
        rule=rule, current=current, lookups=numbers.lookups, exact=numbers.exact, semantic=numbers.semantic,
        semantic_kept=semantic_kept, wrong_kept=min(round(judged.count() * by_target), semantic_kept),
        target_share=target_share, replayed=replayed,
        replay_hits_now=sum(o[0][0] for o in outcomes), replay_hits=sum(o[2][0] for o in outcomes),
        replay_kept=sum(o[0][0] and o[2][0] for o in outcomes), replay_wrong=sum(o[2][1] for o in outcomes),
        replay_new_wrong=sum(o[2][1] and not o[0][0] for o in outcomes), misses=numbers.lookups - numbers.hits)
