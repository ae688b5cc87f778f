"""Stripe's webhook endpoint: a plain Django view (Stripe signs its deliveries; there is
no session and no CSRF token)."""

import logging

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import stripe_api, webhooks

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        outcome = webhooks.event_receive(payload=request.body, signature=request.headers.get("stripe-signature"))
    except stripe_api.BadSignature:
        log.warning("Stripe webhook with a bad signature rejected")
        return JsonResponse({"error": "invalid signature"}, status=400)
    except ValueError:
        return JsonResponse({"error": "invalid payload"}, status=400)
    except stripe_api.NotConfigured:
        log.error("a Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set")
        return JsonResponse({"error": "webhooks are not configured"}, status=503)
    # Unapplied (its transaction rolled back), so Stripe's redelivery tries it again.
    except stripe_api.Retryable:
        return JsonResponse({"error": "Stripe is unreachable; retry later"}, status=503)
    except stripe_api.Refused as exc:
        log.error("ALERT billing: a Stripe webhook could not be applied, Stripe refused our request: %s", exc)
        return JsonResponse({"error": "Stripe refused the request made to apply this event"}, status=400)
    return HttpResponse(outcome, content_type="text/plain")
