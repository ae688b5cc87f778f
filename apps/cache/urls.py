from django.urls import path

from . import api

api_urlpatterns = [
    path("cache/", api.cache_collection, name="api-cache"),
    path("cache/settings/", api.cache_settings, name="api-cache-settings"),
    path("cache/keys/<id:key_id>/", api.cache_by_key, name="api-cache-key"),
    path("cache/entries/<int:entry_id>/", api.cache_entry, name="api-cache-entry"),
]
