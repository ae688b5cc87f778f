"""Which tenant a signed-in user acts for: the one chosen in their session.

The dashboard (`apps/dashboard/decorators.py`) and the management API
(`apps/tenants/api_auth.py`) both resolve the caller's tenant here, so the rule lives in
one place.
"""

from .models import Membership
from .selectors import membership_for

# Session key holding the chosen tenant's id; set at signup (apps/tenants/views.py).
SESSION_TENANT = "tenant_id"


def session_membership(request) -> Membership | None:
    """The signed-in user's membership in the session's tenant, or in their first tenant
    when the session has none or they were removed from it; None when they belong to no
    tenant (callers 404)."""
    if not request.user.is_authenticated:
        return None
    chosen = request.session.get(SESSION_TENANT)
    membership = membership_for(user=request.user, tenant_id=chosen)
    if membership is None and chosen is not None:
        del request.session[SESSION_TENANT]
        membership = membership_for(user=request.user)
    return membership
