from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from pgvector.django import VectorField

from apps.core.validators import finite
from apps.tenants.scoping import TenantOwned

from .embedder import DIMENSIONS


class CacheEntry(TenantOwned):
    """One cached answer. The table is hash-partitioned by tenant and context key (the
    migrations create it in SQL; Django only keeps its state): every partition has its own
    HNSW index, and every lookup names its tenant and context, so a search can only ever
    see one tenant's entries and is pruned to the one partition that holds its context."""

    pk = models.CompositePrimaryKey("tenant_id", "context_key", "id")
    id = models.BigIntegerField()
    # "" for tenant-wide entries, "user:<id>" for entries scoped to one end user.
    scope = models.TextField(default="")
    # Hash of everything besides the last user turn that changes the right answer.
    context_key = models.CharField(max_length=32)
    # Hash of the whole canonical request (context, scope, last user turn): exact hits.
    exact_key = models.CharField(max_length=64)
    api_key = models.ForeignKey("tenants.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+",
                                db_constraint=False)
    prompt_text = models.TextField()
    embedding = VectorField(dimensions=DIMENSIONS)
    # The decision rule's statistic of the entry's neighbourhood (apps.cache.decision).
    neighbour_stat = models.FloatField(null=True)
    response = models.JSONField()
    model = models.CharField(max_length=100)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    hit_count = models.IntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True)
    # Set by negative feedback on a semantic hit: no longer served to paraphrases (exact
    # repeats of its own prompt still are).
    demoted_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "cache_entry"

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.id}: {self.prompt_text[:40]}"


DEFAULT_THRESHOLD = 0.85  # where the second stage is calibrated


class CacheSettings(TenantOwned):
    """A tenant's cache settings; the field defaults are the only defaults. A tenant gets its
    row with its first change (until then it has the defaults: apps.cache.selectors)."""

    # One row per tenant, keyed by it; related_name "+" as in TenantOwned, so Tenant
    # offers no unscoped way here.
    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="+", primary_key=True)
    enabled = models.BooleanField(default=True)
    # The first stage's floor (the neighbourhood-agreement rule); the second stage then
    # serves what meets the target below. 0.85: the verifier is calibrated there. 0.80 let
    # through more candidates but served no more at the 1% target (offline prototype of the
    # embedding-reading verifier, test splits, seeds 0-2: Banking77 37.2/35.2/36.8% against
    # 38.7/36.5/40.2% at 0.85, HWU64 18.4/16.6/18.0% against 19.2/18.1/20.4%). An expert
    # setting: staff tune it per tenant (the console's tune page, admin, set_cache_threshold).
    threshold = models.FloatField(
        default=DEFAULT_THRESHOLD, validators=[finite, MinValueValidator(0.80), MaxValueValidator(0.999)],
        help_text="expert: similarity a cached answer needs to be considered for a new prompt (0.80-0.999; higher"
                  " is stricter); the target wrong-hit rate then decides")
    # What tenants choose: the share of semantic hits that may be wrong. The second stage's
    # calibration (apps.cache.verifier, on held-out training data) maps it to its cut-off;
    # a lower target is stricter. Null: no second stage, the threshold alone (expert).
    target_wrong_hit_rate = models.FloatField(
        default=0.01, null=True, blank=True, validators=[finite, MinValueValidator(0.001), MaxValueValidator(0.10)],
        help_text="share of semantic hits allowed to be wrong (0.001-0.10, e.g. 0.01 for 1%; lower is stricter;"
                  " null: the similarity threshold alone)")
    ttl_seconds = models.PositiveIntegerField(default=7 * 24 * 3600, validators=[MinValueValidator(60)])
    user_scope = models.BooleanField(
        default=False, help_text="share cached answers only between requests with the same `user`")
    tool_calls = models.BooleanField(default=False, help_text="also cache answers that are tool calls")
    high_temperature = models.BooleanField(default=False, help_text="also cache requests with a temperature above 1.0")
    # Moved on by every purge and by turning the cache off: a call that looked the cache up
    # before then stores no answer after it (store.INSERT), so a purge, an erasure above
    # all, is not undone by a call that was in flight.
    generation = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        verbose_name_plural = "cache settings"

    def __str__(self) -> str:
        return f"cache settings of tenant {self.tenant_id}"
