from datetime import datetime, timedelta

from django.db import models
from django.db.models.fields.json import KT
from django.db.models.functions import Now

from apps.tenants.scoping import TenantOwned


class CallRecord(TenantOwned):
    """The ledger: one row per call that reached a tenant. The source of truth for
    billing and savings. Written by apps.billing.ledger on the gateway's event loop.

    The table is partitioned by month of created_at (apps.billing.partitions; the
    migrations create it in SQL). Every unique key of a partitioned table must hold its
    partition key, so in the database the primary key is (id, created_at) and a call is
    unique by (tenant, request id, created_at); the writer fixes a row's created_at once,
    when the row is queued, so a retried or replayed insert still meets that key. Django
    keys rows by id alone: one sequence numbers the rows of every partition, and its
    admin cannot show a model with a composite key."""

    class Cache(models.TextChoices):
        MISS = "miss"
        EXACT = "exact"
        SEMANTIC = "semantic"
        OFF = "off"

    # Not indexed alone: (tenant, created_at) serves every read and deletion by tenant.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    request_id = models.CharField(max_length=40)
    # Not indexed alone: (api_key, created_at, id) serves the call log's key filter in page order.
    api_key = models.ForeignKey("tenants.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+",
                                db_index=False)
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
    # Stamped later by the meter outbox, never by the gateway's insert (None there): the
    # meter event that reported the row to Stripe, and the invoice it is a line of (the
    # invoice of the period the row was collected in, so ours and Stripe's agree).
    meter_window = models.ForeignKey("billing.MeterWindow", null=True, default=None, on_delete=models.RESTRICT,
                                     related_name="+", db_index=False)
    invoice = models.ForeignKey("billing.Invoice", null=True, default=None, on_delete=models.RESTRICT,
                                related_name="+", db_index=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "request_id", "created_at"],
                                               name="callrecord_one_row_per_call")]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="callrecord_tenant_time"),
            models.Index(fields=["api_key", "-created_at", "-id"], name="callrecord_key_time"),
            # What the outbox looks for: billable rows not yet stamped.
            models.Index(fields=["tenant"], name="callrecord_unmetered",
                         condition=models.Q(billable=True, meter_window__isnull=True)),
            models.Index(fields=["invoice", "created_at", "id"], name="callrecord_invoice_lines",
                         condition=models.Q(invoice__isnull=False)),
        ]

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


# --- Money: Stripe, the meter outbox, invoices, quotas, webhooks --------------------------


class BillingAccount(TenantOwned):
    """A tenant's standing with Stripe and with us. A tenant without a row has no Stripe
    customer yet (created asynchronously after sign-up) and is in good standing."""

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    stripe_customer_id = models.CharField(max_length=64, blank=True, default="")
    stripe_subscription_id = models.CharField(max_length=64, blank=True, default="")
    stripe_subscription_item_id = models.CharField(max_length=64, blank=True, default="")
    stripe_price_id = models.CharField(max_length=64, blank=True, default="")  # the plan Stripe bills
    subscription_status = models.CharField(max_length=30, blank=True, default="")
    has_payment_method = models.BooleanField(default=False)
    # Set by the first failed payment, cleared when an invoice is paid; the tenant is
    # suspended once this is older than AKA_BILLING_GRACE_SECONDS.
    unpaid_since = models.DateTimeField(null=True, blank=True)
    # When Stripe last set the standing (unpaid_since) and the subscription fields: Stripe
    # neither orders its webhooks nor stops redelivering old ones, so an older event is
    # not applied over them.
    standing_as_of = models.DateTimeField(null=True, blank=True)
    subscription_as_of = models.DateTimeField(null=True, blank=True)
    # Overrides the plan's monthly call cap (None: the plan's; 0: no cap).
    monthly_call_cap = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"billing account of tenant {self.tenant_id}"


class PlanBilling(models.Model):
    """What billing attaches to a plan (apps.tenants Plan, keyed by its name): the Stripe
    price that bills it and an optional monthly call cap."""

    plan_name = models.CharField(max_length=50, unique=True)
    monthly_call_cap = models.PositiveIntegerField(null=True, blank=True)  # None: no cap
    stripe_price_id = models.CharField(max_length=64, blank=True, default="")
    price_cents = models.PositiveIntegerField(default=0)  # the per-call price the Stripe price charges

    def __str__(self) -> str:
        return self.plan_name


class StripeCatalog(models.Model):
    """Ids of our one-of-a-kind Stripe objects: the meter and the product."""

    name = models.CharField(max_length=30, unique=True)
    stripe_id = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.name}={self.stripe_id}"


class MeterWindow(TenantOwned):
    """One meter event: a tenant's billable calls stamped into one short window. The row
    exists (with its identifier) before anything is sent, so a retry after any failure
    sends the same identifier; `acked` is the permanent record that Stripe took it."""

    class State(models.TextChoices):
        PENDING = "pending"        # collecting until the window ends, then to send (again, after a failure)
        SENDING = "sending"        # an attempt is in flight, or its worker died during it
        ACKED = "acked"            # Stripe accepted it (or already had it)
        FAILED = "failed"          # Stripe refused it: a person must look
        UNCERTAIN = "uncertain"    # maybe received, unacknowledged past Stripe's dedup horizon: not resent

    start = models.DateTimeField()
    seconds = models.PositiveIntegerField()
    quantity = models.PositiveIntegerField(default=0)
    identifier = models.CharField(max_length=100, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Not before this time: the back-off after a failure, or the lease of an attempt in flight.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # The first attempt whose outcome is unknown (timeout, 500, a worker killed mid-send):
    # resending is safe only while Stripe still deduplicates since then.
    maybe_received_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    stripe_customer_id = models.CharField(max_length=64, blank=True, default="")
    event_timestamp = models.BigIntegerField(null=True)   # what Stripe was told (clamped to its 35 days)
    acked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "start"], name="one_meter_window_per_tenant_start")]
        indexes = [models.Index(fields=["state", "start"], name="meterwindow_state_start")]

    def __str__(self) -> str:
        return self.identifier


class Invoice(TenantOwned):
    """A tenant's bill for one period; its lines are the ledger rows stamped with it. A
    draft collects lines during its period; finalized at the period's close, it never
    changes again: rows that arrive later go on the next one."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        FINALIZED = "finalized"
        PAID = "paid"
        UNCOLLECTIBLE = "uncollectible"

    number = models.CharField(max_length=40, unique=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    calls = models.PositiveIntegerField(default=0)
    unit_price_cents = models.PositiveIntegerField(null=True)  # None when the price changed mid-period
    subtotal_cents = models.BigIntegerField(default=0)
    tax_rate_bp = models.PositiveIntegerField(default=0)       # basis points (1/100 of a percent)
    tax_cents = models.BigIntegerField(default=0)
    total_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    late_calls = models.PositiveIntegerField(default=0)        # calls from earlier periods that arrived late
    stripe_invoice_id = models.CharField(max_length=64, blank=True, default="")
    hosted_invoice_url = models.URLField(max_length=500, blank=True, default="")
    # Finalized, and the Stripe invoice webhooks announced before then not yet applied to
    # it (apps.billing.invoices.invoice_link): the next close tries again. A database
    # default, because the outbox inserts drafts in SQL.
    stripe_link_pending = models.BooleanField(db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "period_start"], name="one_invoice_per_tenant_period")]
        ordering = ["-period_start"]

    def __str__(self) -> str:
        return self.number

    @property
    def last_day(self) -> datetime:
        """The period's last day, for people: period_end is exclusive (the next period's first instant)."""
        return self.period_end - timedelta(days=1)


class WebhookEvent(models.Model):
    """Each Stripe event once, by id: recorded in the transaction that handles it."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    # The Stripe customer its object names, if any, kept by PostgreSQL from the payload: a
    # closing invoice looks its customer's invoice events up by it (indexed), where a filter
    # on the payload read the whole table once per tenant.
    customer = models.GeneratedField(expression=KT("payload__data__object__customer"),
                                     output_field=models.TextField(), db_persist=True)
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["customer", "received_at"], name="webhook_customer_received")]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class MeterDiscrepancy(TenantOwned):
    """A day on which the meter's total in Stripe differs from what we acknowledged."""

    day = models.DateField()
    ours = models.BigIntegerField()
    stripes = models.FloatField()
    found_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="one_discrepancy_per_tenant_day")]
        verbose_name_plural = "meter discrepancies"

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} {self.day}: ours {self.ours}, Stripe {self.stripes}"
