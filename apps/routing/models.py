from django.db import models
from django.db.models.functions import Now

from apps.tenants.scoping import TenantOwned


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
