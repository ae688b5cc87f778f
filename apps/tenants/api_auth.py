"""DRF authentication and permission for the management API (/api/...).

A request is either an API key issued with the `admin` scope (acting for its tenant, with
admin rights; an `inference` key is refused with 403) or a logged-in user acting for the
tenant chosen in the session. Both end with `request.tenant` and
`request.can_manage` set.
"""

from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from apps.core.errors import ApiError

from .keyauth import Principal, extract_key, invalid_key, resolve_key
from .models import ApiKey, Tenant
from .sessions import session_membership


class KeyUser:
    """The `request.user` of a key-authenticated call."""

    is_authenticated = True
    is_active = True
    is_staff = False

    def __init__(self, principal: Principal):
        self.principal = principal

    def __str__(self) -> str:
        return f"api-key:{self.principal.api_key_id}"


def _refusal(err: ApiError) -> exceptions.APIException:
    return exceptions.PermissionDenied(err.message) if err.status == 403 else exceptions.AuthenticationFailed(err.message)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = extract_key(request.headers)
        if raw is None:
            return None
        try:
            principal = resolve_key(raw)
        except ApiError as err:
            raise _refusal(err) from None
        return KeyUser(principal), principal

    def authenticate_header(self, request):
        return "Bearer"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema (/api/schema/) describes key authentication."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key issued with the admin scope."}


class IsTenantMember(BasePermission):
    """Resolves the calling tenant; members read, owners/admins (and keys) write."""

    def has_permission(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if isinstance(request.auth, Principal):
            if request.auth.scope != ApiKey.Scope.ADMIN:
                raise exceptions.PermissionDenied(
                    "This API key may only call the gateway (/v1/). The management API needs a key"
                    " issued with the admin scope.")
            request.tenant = Tenant.objects.select_related("plan").filter(pk=request.auth.tenant_id).first()
            if request.tenant is None:   # deleted (its keys with it) while this process still had the key cached
                raise _refusal(invalid_key(extract_key(request.headers)))
            request.can_manage = True
        else:
            membership = session_membership(request)
            if membership is None:
                raise Http404("No tenant")
            request.tenant = membership.tenant
            request.can_manage = membership.can_manage
        if request.method not in ("GET", "HEAD", "OPTIONS") and not request.can_manage:
            raise exceptions.PermissionDenied("Only the tenant's owners and admins may change this.")
        return True
