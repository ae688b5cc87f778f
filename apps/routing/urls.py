from django.urls import path

from . import api

api_urlpatterns = [
    path("routing/settings/", api.routing_settings, name="api-routing-settings"),
]
