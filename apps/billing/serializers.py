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


class RedirectSerializer(serializers.Serializer):
    """Where Stripe's page sends the tenant back to (absolute URLs)."""

    success_url = serializers.URLField(required=False)
    cancel_url = serializers.URLField(required=False)
    return_url = serializers.URLField(required=False)
