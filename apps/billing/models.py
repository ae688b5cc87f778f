from django.db import models
from django.db.models.functions import Now

from apps.tenants.scoping import TenantOwned


class CallRecord(TenantOwned):
    """The ledger: one row per call that reached a tenant. The source of truth for
    billing and savings. Written by apps.billing.ledger on the gateway's event loop."""

    class Cache(models.TextChoices):
        MISS = "miss"
        EXACT = "exact"
        SEMANTIC = "semantic"
        OFF = "off"

    request_id = models.CharField(max_length=40, unique=True)
    api_key = models.ForeignKey("tenants.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+")
    endpoint = models.CharField(max_length=30)          # chat.completions | messages | embeddings
    model_requested = models.CharField(max_length=100)
    model_served = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=20, blank=True)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Micro-dollars (USD per 1M tokens x tokens), exact to 1/10,000 of a micro-dollar.
    provider_cost_micros = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    # What the tenant's baseline model would have cost for the same tokens (for a cache hit,
    # the tokens of the answer replayed); savings = counterfactual - provider cost.
    counterfactual_cost_micros = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    baseline_model = models.CharField(max_length=100, blank=True)
    price_cents = models.PositiveIntegerField(default=0)  # the plan's per-call price
    billable = models.BooleanField(default=False)           # successful calls only
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=40, blank=True)
    cache = models.CharField(max_length=10, choices=Cache.choices, default=Cache.MISS)
    cache_similarity = models.FloatField(null=True)
    cache_entry_id = models.BigIntegerField(null=True)  # the cache entry a hit was served from
    # Routing and speculation (empty when the client named a model and nothing speculated).
    route = models.CharField(max_length=20, blank=True, default="", db_default="")        # the pool route taken
    route_reason = models.CharField(max_length=100, blank=True, default="", db_default="")
    predicted_quality = models.FloatField(null=True)  # P(the cheap answer is good enough)
    speculation = models.CharField(max_length=20, blank=True, default="", db_default="")  # cascade | race | selective
    speculation_outcome = models.CharField(max_length=20, blank=True, default="", db_default="")
    judge = models.CharField(max_length=20, blank=True, default="", db_default="")
    judge_score = models.FloatField(null=True)
    # The parts of provider_cost_micros: the draft, the strong call (cancelled or not), the judge.
    draft_cost_micros = models.DecimalField(max_digits=18, decimal_places=4, default=0, db_default=0)
    strong_cost_micros = models.DecimalField(max_digits=18, decimal_places=4, default=0, db_default=0)
    judge_cost_micros = models.DecimalField(max_digits=18, decimal_places=4, default=0, db_default=0)
    attempts = models.PositiveSmallIntegerField(default=1)
    latency_ms = models.FloatField()
    ttft_ms = models.FloatField(null=True)
    prompt = models.TextField(null=True)   # only when the tenant turned prompt logging on
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="callrecord_tenant_time")]

    def __str__(self) -> str:
        return self.request_id


DEFAULT_BASELINE_MODEL = "gpt-4o"


class BillingSettings(TenantOwned):
    """A tenant's billing settings; a tenant without a row has the defaults."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    # The model the tenant would call without us: what each call's savings are measured against.
    baseline_model = models.CharField(max_length=100, default=DEFAULT_BASELINE_MODEL)

    class Meta:
        verbose_name_plural = "billing settings"

    def __str__(self) -> str:
        return f"billing settings of tenant {self.tenant_id}"
