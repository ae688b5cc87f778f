from rest_framework import serializers

from .models import CacheSettings


class CacheSettingsSerializer(serializers.ModelSerializer):
    """What a tenant's owners and admins may tune about its cache."""

    class Meta:
        model = CacheSettings
        fields = ["enabled", "target_wrong_hit_rate", "threshold", "ttl_seconds", "user_scope", "tool_calls", "high_temperature"]
