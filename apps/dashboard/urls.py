from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("keys/", views.keys, name="keys"),
    path("keys/new/", views.key_create, name="key-create"),
    path("keys/<str:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
