from datetime import datetime

from .models import Feedback
from .services import NEGATIVE


def negative_request_ids(*, tenant, since: datetime) -> list[str]:
    """The calls the tenant said were answered wrongly since `since`."""
    return list(Feedback.objects.for_tenant(tenant).filter(score__lt=NEGATIVE, created_at__gte=since)
                .values_list("request_id", flat=True))
