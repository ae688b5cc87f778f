from django.urls import path

from . import api, views

urlpatterns = [
    path("stripe/webhook", views.stripe_webhook, name="stripe-webhook"),
]

api_urlpatterns = [
    path("invoices/", api.invoice_collection, name="api-invoices"),
    path("invoices/<id:invoice_id>/", api.invoice_detail, name="api-invoice"),
    path("invoices/<id:invoice_id>/lines/", api.invoice_lines, name="api-invoice-lines"),
    path("invoices/<id:invoice_id>/csv", api.invoice_csv, name="api-invoice-csv"),
    path("billing/", api.billing_account, name="api-billing"),
    path("billing/checkout/", api.checkout, name="api-billing-checkout"),
    path("billing/portal/", api.portal, name="api-billing-portal"),
]
