from rest_framework import serializers

from .models import RoutingSettings


class RoutingSettingsSerializer(serializers.ModelSerializer):
    """What a tenant's owners and admins may tune about routing and speculation. Model
    names are checked against the catalog by the service (routing_settings_update)."""

    class Meta:
        model = RoutingSettings
        fields = ["pool", "aliases", "allow_substitution", "quality_floor", "speculation", "buffered_speculation",
                  "judge", "judge_threshold", "judge_model", "exploration"]
