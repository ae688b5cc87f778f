from django.contrib import admin

from .models import CatalogModel


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    list_display = ["model_id", "provider", "tier", "input_per_mtok", "output_per_mtok", "context_window", "enabled"]
    list_filter = ["provider", "tier", "enabled"]
    list_editable = ["input_per_mtok", "output_per_mtok", "enabled"]
    search_fields = ["model_id", "family"]
