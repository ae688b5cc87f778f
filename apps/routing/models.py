from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now
from pgvector.django import VectorField

from apps.core.validators import finite
from apps.tenants.scoping import TenantOwned

EMBEDDING_DIMENSIONS = 384   # the cache's embedder (all-MiniLM-L6-v2), whose vectors the router reuses


class Feedback(TenantOwned):
    """A tenant's verdict on one of its calls (`POST /v1/feedback`): the labels the router
    learns from, and, on a cache hit, what demotes the entry. The latest verdict on a call
    replaces an earlier one."""

    request_id = models.CharField(max_length=40)
    score = models.FloatField()             # -1 (wrong) .. 1 (good); thumbs down/up are -1/1
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "request_id"], name="feedback_once_per_call")]

    def __str__(self) -> str:
        return f"{self.request_id}: {self.score:+.2f}"


def default_pool() -> list[str]:
    return ["gpt-4o-mini", "gpt-4o"]


class RoutingSettings(TenantOwned):
    """A tenant's routing and speculation settings; the field defaults are the only
    defaults. A tenant gets its row with its first change (apps.routing.selectors)."""

    class Speculation(models.TextChoices):
        OFF = "off"
        CASCADE = "cascade", "cascade: cheap first, strong only when the judge rejects"
        RACE = "race", "race: cheap and strong at once, strong cancelled on accept"
        SELECTIVE = "selective", "selective race: race only when the cheap answer is at risk"

    class Judge(models.TextChoices):
        HEURISTIC = "heuristic"
        LOGPROB = "logprob", "mean token log-probability"
        LLM = "llm", "LLM as judge"

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="+", primary_key=True)
    pool = models.JSONField(default=default_pool,
                            help_text="catalog model ids, cheapest first, strongest last")
    aliases = models.JSONField(default=dict, blank=True,
                               help_text='model names routed within their own pool, e.g. {"aka:support": [...]}')
    allow_substitution = models.BooleanField(
        default=False, help_text="route calls naming a model of the pool too (not only `auto` and aliases)")
    quality_floor = models.FloatField(
        default=0.95, validators=[finite, MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="share of the strongest model's quality a cheaper model must be predicted to keep")
    speculation = models.CharField(max_length=12, choices=Speculation.choices, default=Speculation.OFF)
    buffered_speculation = models.BooleanField(
        default=False, help_text="streaming calls speculate too (the answer starts once it is accepted)")
    judge = models.CharField(max_length=12, choices=Judge.choices, default=Judge.HEURISTIC)
    judge_threshold = models.FloatField(
        default=0.5, validators=[finite, MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="judge score (0-1) a draft needs to be served")
    judge_model = models.CharField(max_length=100, default="gpt-4o-mini", help_text="the LLM judge's model")
    exploration = models.FloatField(
        default=0.05, validators=[finite, MinValueValidator(0.0), MaxValueValidator(0.2)],
        help_text="largest share of routed calls decided by Thompson sampling instead of the best estimate")

    class Meta:
        verbose_name_plural = "routing settings"

    def __str__(self) -> str:
        return f"routing settings of tenant {self.tenant_id}"


class RoutingSample(TenantOwned):
    """One model's answer to one routed prompt, with the prompt's embedding: the router's
    memory. `good` (0..1) is its label once a judge or the client's feedback gave one; the
    predictor reads the labelled nearest neighbours. The table is hash-partitioned by
    tenant with an HNSW index per partition over labelled rows (the migrations create it in
    SQL); every statement names its tenant."""

    pk = models.CompositePrimaryKey("tenant_id", "id")
    id = models.BigIntegerField()
    request_id = models.CharField(max_length=40)
    model = models.CharField(max_length=100)
    task = models.CharField(max_length=20)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    good = models.FloatField(null=True)
    label_source = models.CharField(max_length=10, default="")   # judge | feedback
    created_at = models.DateTimeField()

    class Meta:
        db_table = "routing_sample"

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.request_id} {self.model}: {self.good}"
