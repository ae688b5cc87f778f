from django.contrib import admin
from django.urls import include, path

from apps.cache.urls import api_urlpatterns as cache_api
from apps.core import views as core_views
from apps.tenants.urls import api_urlpatterns as tenant_api

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("metrics", core_views.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("accounts/", include("apps.tenants.urls")),
    path("api/", include(tenant_api)),
    path("api/", include(cache_api)),
    path("", include("apps.dashboard.urls")),
]
