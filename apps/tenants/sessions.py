"""Which tenant a signed-in user acts for: the one chosen in their session.

The dashboard (`apps/dashboard/decorators.py`) and the management API
(`apps/tenants/api_auth.py`) both resolve the caller's tenant here, so the rule lives in
one place.
"""

from .models import Membership
from .selectors import access_own_membership, memberships_of

# Session key holding the chosen tenant's id; set at signup (apps/tenants/views.py) and
# by the header's tenant picker (session_tenant_choose).
SESSION_TENANT = "tenant_id"


def session_memberships(request) -> tuple[Membership | None, list[Membership]]:
    """The signed-in user's membership in the session's tenant, or in their first tenant
    when the session has none or they were removed from it (None when they belong to no
    tenant: callers 404); and all their memberships, oldest first, for the tenant picker.
    One query for both: a person belongs to a handful of tenants."""
    if not request.user.is_authenticated:
        return None, []
    memberships = list(memberships_of(user=request.user).order_by("created_at"))
    chosen = request.session.get(SESSION_TENANT)
    membership = next((m for m in memberships if m.tenant_id == chosen), None)
    if membership is None and chosen is not None:
        del request.session[SESSION_TENANT]
    return membership or next(iter(memberships), None), memberships


def session_membership(request) -> Membership | None:
    return session_memberships(request)[0]


def session_tenant_choose(request, *, tenant_id) -> Membership:
    """The session acts for `tenant_id` from now on; 404 unless the user belongs to it."""
    membership = access_own_membership(user=request.user, tenant_id=tenant_id)
    request.session[SESSION_TENANT] = membership.tenant_id
    return membership
