"""Routing's writes. For now: feedback on calls (the router's labels, once it lands)."""

from .models import Feedback

# Below this a verdict says the answer was wrong.
NEGATIVE = 0.0


def feedback_record(*, tenant_id: int, request_id: str, score: float, comment: str = "") -> Feedback:
    found, _ = Feedback.objects.for_tenant(tenant_id).update_or_create(
        tenant_id=tenant_id, request_id=request_id, defaults={"score": score, "comment": comment})
    return found
