from django.contrib import admin

from apps.tenants.admin import AcrossTenantsAdmin

from .models import Feedback, RoutingSettings


@admin.register(Feedback)
class FeedbackAdmin(AcrossTenantsAdmin):
    list_display = ("request_id", "tenant", "score", "created_at")
    readonly_fields = ("tenant", "request_id", "score", "comment", "created_at")


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(AcrossTenantsAdmin):
    list_display = ("tenant", "speculation", "quality_floor", "judge")
