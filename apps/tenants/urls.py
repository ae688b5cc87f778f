from django.urls import path

from . import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("signup/confirm/<id:token>/", views.signup_confirm, name="signup-confirm"),
    path("tenant/", views.tenant_choose, name="tenant-choose"),
    # Ahead of django.contrib.auth.urls, which has the same path unthrottled.
    path("password_reset/", views.ThrottledPasswordReset.as_view(), name="password_reset"),
]
