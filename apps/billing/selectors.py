"""Reads of the ledger for the gateway's feedback endpoint and the dashboard."""

from dataclasses import dataclass
from datetime import datetime

from .models import CallRecord


@dataclass(frozen=True, slots=True)
class CallSummary:
    request_id: str
    cache: str
    cache_entry_id: int | None
    model_served: str


def call_of(*, tenant_id: int, request_id: str) -> CallSummary | None:
    """One of the tenant's calls by request id; None for another tenant's or an unknown one."""
    found = (CallRecord.objects.for_tenant(tenant_id).filter(request_id=request_id)
             .values_list("request_id", "cache", "cache_entry_id", "model_served").first())
    return CallSummary(*found) if found else None


def semantic_hits(*, tenant, since: datetime, among: list[str] | None = None) -> int:
    """Calls served from a semantic cache hit since `since` (only those in `among`, if given)."""
    calls = CallRecord.objects.for_tenant(tenant).filter(cache=CallRecord.Cache.SEMANTIC, created_at__gte=since)
    if among is not None:
        calls = calls.filter(request_id__in=among)
    return calls.count()
