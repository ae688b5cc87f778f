from django.contrib import admin

from .models import Feedback, RoutingSettings


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("request_id", "tenant", "score", "created_at")
    readonly_fields = ("tenant", "request_id", "score", "comment", "created_at")

    def get_queryset(self, request):
        return Feedback.objects.unscoped_across_all_tenants()  # staff see every tenant's


@admin.register(RoutingSettings)
class RoutingSettingsAdmin(admin.ModelAdmin):
    list_display = ("tenant", "speculation", "quality_floor", "judge")

    def get_queryset(self, request):
        return RoutingSettings.objects.unscoped_across_all_tenants()  # staff tune every tenant's
