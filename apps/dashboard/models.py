from django.db import models

from apps.tenants.scoping import TenantOwned


class CallRollup(TenantOwned):
    """The ledger summed per tenant, hour, model, cache outcome, route, speculation outcome
    and billable: what the dashboard reads instead of scanning a month of calls. Written
    only by apps.dashboard.rollups.rollups_refresh, which recomputes whole hours."""

    hour = models.DateTimeField()
    model = models.CharField(max_length=100)          # the model served (asked, when none was)
    cache = models.CharField(max_length=10)
    route = models.CharField(max_length=20)
    outcome = models.CharField(max_length=20)         # the call's speculation outcome, "" if none
    billable = models.BooleanField()
    calls = models.PositiveIntegerField()
    errors = models.PositiveIntegerField()            # status >= 400
    prompt_tokens = models.BigIntegerField()
    completion_tokens = models.BigIntegerField()
    provider_cost_micros = models.DecimalField(max_digits=20, decimal_places=4)
    counterfactual_cost_micros = models.DecimalField(max_digits=20, decimal_places=4)
    price_cents = models.BigIntegerField()
    latency_sum_ms = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["tenant", "hour", "model", "cache", "route", "outcome", "billable"], name="one_rollup_per_group")]
        indexes = [models.Index(fields=["hour"], name="callrollup_hour")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.hour:%Y-%m-%d %H}h {self.model}/{self.cache}: {self.calls}"


class LatencyRollup(TenantOwned):
    """A tenant's latencies per hour as a histogram, {"<bucket index>": calls} with the
    buckets of apps.dashboard.latency: summed over a period, it gives p50 and p95. Kept
    apart from CallRollup because summing histograms costs per row and per bucket, and
    one row per hour is all a percentile needs."""

    hour = models.DateTimeField()
    calls = models.PositiveIntegerField()
    latency_hist = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "hour"], name="one_latency_rollup_per_hour")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.hour:%Y-%m-%d %H}h: {self.calls} calls"


class RollupState(models.Model):
    """One row: the rollups hold every ledger row created before `through` (an hour
    boundary); pages add the ledger's rows since then themselves."""

    through = models.DateTimeField()
    refreshed_at = models.DateTimeField()
    # The ledger's highest committed id at this refresh and at the one before (the same
    # on a first refresh; None: not known yet). A row above the earlier one that is
    # older than the re-checked hours came late, from a replayed spool. The earlier one,
    # because ids are taken at insert and seen at commit: a replay in flight during this
    # refresh holds ids below this one.
    ledger_id = models.BigIntegerField(null=True)
    ledger_id_before = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return f"rollups through {self.through:%Y-%m-%d %H:%M}"
