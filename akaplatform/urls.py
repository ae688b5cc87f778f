from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from apps.billing.urls import api_urlpatterns as billing_api
from apps.cache.urls import api_urlpatterns as cache_api
from apps.dashboard import api as dashboard_api
from apps.routing.urls import api_urlpatterns as routing_api
from apps.tenants.urls import api_urlpatterns as tenant_api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.tenants.urls")),  # first: its throttled reset replaces Django's
    path("accounts/", include("django.contrib.auth.urls")),
    # Public, like any API reference: it names endpoints, never data.
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
         name="api-schema"),
    path("api/", include(tenant_api)),
    # Composed from the apps that own the settings (apps/dashboard/api.py).
    path("api/settings/", dashboard_api.tenant_settings, name="api-settings"),
    path("api/", include(cache_api)),
    path("api/", include(routing_api)),
    path("api/", include(billing_api)),
    path("billing/", include("apps.billing.urls")),
    path("", include("apps.dashboard.urls")),
]
