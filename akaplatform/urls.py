from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from apps.billing.urls import api_urlpatterns as billing_api
from apps.cache.urls import api_urlpatterns as cache_api
from apps.dashboard import api as dashboard_api
from apps.routing.urls import api_urlpatterns as routing_api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.tenants.urls")),  # first: its throttled reset replaces Django's
    path("accounts/", include("django.contrib.auth.urls")),
    # Public, like any API reference: it names endpoints, never data.
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
         name="api-schema"),
    # Composed from the apps that own the settings, or audited as the dashboard does (apps/dashboard/api.py).
    path("api/keys/", dashboard_api.keys_collection, name="api-keys"),
    path("api/keys/<id:key_id>/", dashboard_api.key_detail, name="api-key-detail"),
    path("api/settings/", dashboard_api.tenant_settings, name="api-settings"),
    path("api/", include(cache_api)),
    path("api/", include(routing_api)),
    path("api/", include(billing_api)),
    path("billing/", include("apps.billing.urls")),
    path("", include("apps.dashboard.urls")),
]
