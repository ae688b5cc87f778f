import uuid

from django.conf import settings
from django.db import models

from .scoping import TenantOwned


class Plan(models.Model):
    name = models.CharField(max_length=50, unique=True)
    price_per_call_cents = models.PositiveIntegerField()
    # Requests per minute for the whole tenant and for each of its keys (0 = no limit).
    requests_per_minute = models.PositiveIntegerField(default=600)
    key_requests_per_minute = models.PositiveIntegerField(default=300)

    def __str__(self) -> str:
        return f"{self.name} ({self.price_per_call_cents}c/call)"


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    # Per-tenant overrides of the plan's rate limits; empty means "use the plan's".
    rate_limit_rpm = models.PositiveIntegerField(null=True, blank=True)
    key_rate_limit_rpm = models.PositiveIntegerField(null=True, blank=True)
    # Off by default: the ledger keeps prompts only when the tenant asks for it.
    log_prompts = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug

    @property
    def effective_rpm(self) -> int:
        return self.plan.requests_per_minute if self.rate_limit_rpm is None else self.rate_limit_rpm

    @property
    def effective_key_rpm(self) -> int:
        return self.plan.key_requests_per_minute if self.key_rate_limit_rpm is None else self.key_rate_limit_rpm


class Membership(TenantOwned):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user_and_tenant")]

    @property
    def can_manage(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class ApiKey(TenantOwned):
    class Scope(models.TextChoices):
        # Calls the gateway (/v1/) only: what an application embeds.
        INFERENCE = "inference"
        # Also the management API (keys, settings, cache purges): issued only on request.
        ADMIN = "admin"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.INFERENCE)
    # First characters of the key, enough for a person to recognise it; never the secret.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
