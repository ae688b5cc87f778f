from django.urls import path

from . import staff, views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("calls/", views.calls, name="calls"),
    path("calls/<id:request_id>/", views.call_detail, name="call"),
    path("invoices/", views.invoice_list, name="invoices"),
    path("invoices/<id:invoice_id>/", views.invoice_detail, name="invoice"),
    path("invoices/<id:invoice_id>/csv", views.invoice_csv, name="invoice-csv"),
    path("keys/", views.keys, name="keys"),
    path("keys/new/", views.key_create, name="key-create"),
    path("keys/<id:key_id>/rename/", views.key_rename, name="key-rename"),
    path("keys/<id:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/members/invite/", views.member_invite, name="member-invite"),
    path("settings/members/<int:membership_id>/role/", views.member_role, name="member-role"),
    path("settings/members/<int:membership_id>/remove/", views.member_remove, name="member-remove"),
    path("settings/<slug:section_key>/", views.settings_save, name="settings-save"),
    path("staff/", staff.console, name="staff"),
    path("staff/audit/", staff.audit, name="staff-audit"),
    path("staff/tenants/<int:tenant_id>/", staff.tune, name="staff-tune"),
    path("staff/tenants/<int:tenant_id>/preview/", staff.tune_preview, name="staff-preview"),
]
