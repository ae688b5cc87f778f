from django.db import models
from pgvector.django import VectorField

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

    class Meta:
        db_table = "cache_entry"

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.id}: {self.prompt_text[:40]}"
