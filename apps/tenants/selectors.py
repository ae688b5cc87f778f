from django.core.exceptions import ValidationError
from django.http import Http404

from .models import ApiKey, Membership, Tenant


def api_key_list(*, tenant: Tenant):
    return ApiKey.objects.for_tenant(tenant).order_by("-created_at")


def access_api_key(*, tenant: Tenant, key_id) -> ApiKey:
    """The tenant's key with this id; 404 for a key of another tenant or a malformed id."""
    try:
        return ApiKey.objects.for_tenant(tenant).get(pk=key_id)
    except (ApiKey.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such API key") from None


def memberships_of(*, user):
    # A user's own memberships span tenants by design; the filter on user scopes it.
    return Membership.objects.unscoped_across_all_tenants().filter(user=user).select_related("tenant", "tenant__plan")


def access_own_membership(*, user, tenant_id) -> Membership:
    """The user's membership in `tenant_id`; 404 for a tenant they do not belong to, the same
    whether or not it exists, and for a missing or malformed id."""
    try:
        found = memberships_of(user=user).filter(tenant_id=tenant_id).first()
    except (ValidationError, ValueError, TypeError):
        found = None
    if found is None:
        raise Http404("No such tenant")
    return found


def members_of(*, tenant: Tenant):
    return Membership.objects.for_tenant(tenant).select_related("user").order_by("created_at")


def access_membership(*, tenant: Tenant, membership_id) -> Membership:
    found = Membership.objects.for_tenant(tenant).select_related("user").filter(pk=membership_id).first()
    if found is None:
        raise Http404("No such member")
    return found
