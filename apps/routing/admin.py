from django.contrib import admin

from .models import Feedback


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("request_id", "tenant", "score", "created_at")
    readonly_fields = ("tenant", "request_id", "score", "comment", "created_at")

    def get_queryset(self, request):
        return Feedback.objects.unscoped_across_all_tenants()  # staff see every tenant's
