from rest_framework import serializers

from .models import ApiKey, Tenant


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=ApiKey.Scope.choices, default=ApiKey.Scope.INFERENCE)


class TenantSettingsSerializer(serializers.ModelSerializer):
    """What a tenant's owners and admins may tune themselves. Plan and rate limits are
    shown but changed by staff; each app serves its own settings (apps.cache.serializers)."""

    plan = serializers.CharField(source="plan.name", read_only=True)
    requests_per_minute = serializers.IntegerField(source="effective_rpm", read_only=True)

    class Meta:
        model = Tenant
        fields = ["name", "slug", "plan", "requests_per_minute", "log_prompts"]
        read_only_fields = ["slug", "plan", "requests_per_minute"]
