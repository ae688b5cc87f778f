from django.core.validators import URLValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import CallRecord, Invoice
from .selectors import invoice_amounts


class InvoiceSerializer(serializers.ModelSerializer):
    """A draft (the current period) shows its running calls, subtotal and total."""

    def to_representation(self, instance):
        return {**super().to_representation(instance), **invoice_amounts(invoice=instance)}

    class Meta:
        model = Invoice
        fields = ["id", "number", "period_start", "period_end", "status", "calls", "late_calls", "unit_price_cents",
                  "subtotal_cents", "tax_rate_bp", "tax_cents", "total_cents", "currency", "stripe_invoice_id",
                  "hosted_invoice_url", "created_at", "paid_at"]


class InvoiceLineSerializer(serializers.ModelSerializer):
    time = serializers.DateTimeField(source="created_at")

    class Meta:
        model = CallRecord
        fields = ["request_id", "time", "model_served", "cache", "price_cents"]


@extend_schema_field(OpenApiTypes.URI)
class WebAddressField(serializers.CharField):
    """An absolute http(s) address of a sane length. DRF's URLField also takes ftp:, and
    reports its only limit (Django's 2,048 characters) as "not a valid URL"."""

    default_error_messages = {"invalid": "Enter an absolute http or https URL."}

    def __init__(self, **kwargs):
        super().__init__(max_length=1000, **kwargs)
        self.validators.append(URLValidator(schemes=["http", "https"], message=self.error_messages["invalid"]))


class RedirectSerializer(serializers.Serializer):
    """Where Stripe's page sends the tenant's browser back to."""

    success_url = WebAddressField(required=False)
    cancel_url = WebAddressField(required=False)
    return_url = WebAddressField(required=False)
