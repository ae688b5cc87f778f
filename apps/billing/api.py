"""Billing under /api/: invoices (list, detail, lines, CSV), the account's standing,
Checkout for a first payment method and the Customer Portal."""

from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_aware
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from . import accounts, invoices, selectors, stripe_api
from .serializers import InvoiceLineSerializer, InvoiceSerializer, RedirectSerializer


class LinePages(CursorPagination):
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"
    ordering = ("created_at", "id")

    def decode_cursor(self, request):
        """DRF puts the cursor's position into the created_at filter as it comes; one that
        is not an aware timestamp would fail there as a 500."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                at = parse_datetime(cursor.position)
            except ValueError:
                at = None
            if at is None or not is_aware(at):
                raise NotFound(self.invalid_cursor_message)
        return cursor


@extend_schema(operation_id="invoices_list")  # the detail view would take the same generated id
@api_view(["GET"])
def invoice_collection(request):
    return Response({"data": InvoiceSerializer(selectors.invoice_list(tenant=request.tenant), many=True).data})


@api_view(["GET"])
def invoice_detail(request, invoice_id):
    return Response(InvoiceSerializer(selectors.access_invoice(tenant=request.tenant, invoice_id=invoice_id)).data)


@api_view(["GET"])
def invoice_lines(request, invoice_id):
    invoice = selectors.access_invoice(tenant=request.tenant, invoice_id=invoice_id)
    pages = LinePages()
    page = pages.paginate_queryset(selectors.invoice_lines(invoice=invoice), request)
    return pages.get_paginated_response(InvoiceLineSerializer(page, many=True).data)


@api_view(["GET"])
def invoice_csv(request, invoice_id):
    """One line per billable call, streamed."""
    return invoices.csv_response(selectors.access_invoice(tenant=request.tenant, invoice_id=invoice_id))


@api_view(["GET"])
def billing_account(request):
    return Response(selectors.billing_overview(tenant=request.tenant))


def _start(request, start, **urls):
    if not request.can_manage:
        raise PermissionDenied("Only the tenant's owners and admins may manage payment.")
    form = RedirectSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    back = request.build_absolute_uri("/")
    try:
        url = start(tenant=request.tenant, **{name: form.validated_data.get(name) or back for name in urls})
    except accounts.BillingUnavailable as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    except stripe_api.Retryable:
        return Response({"detail": "Payments are unavailable right now; try again in a minute."},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE)
    except stripe_api.Refused as exc:
        return Response({"detail": f"Stripe refused the request: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
    return Response({"url": url}, status=status.HTTP_201_CREATED)


@api_view(["POST"])
def checkout(request):
    """A Checkout page for the first payment method: {"url": ...}."""
    return _start(request, accounts.checkout_start, success_url=True, cancel_url=True)


@api_view(["POST"])
def portal(request):
    """A Customer Portal session: {"url": ...}."""
    return _start(request, accounts.portal_start, return_url=True)
