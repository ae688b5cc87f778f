from django.urls import path

from . import api, views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
]

api_urlpatterns = [
    path("keys/", api.keys_collection, name="api-keys"),
    path("keys/<str:key_id>/", api.key_detail, name="api-key-detail"),
]
