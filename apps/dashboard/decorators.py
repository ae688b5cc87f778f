from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404

from apps.tenants.sessions import session_memberships


def tenant_member(view=None, *, manage: bool = False):
    """Logged-in member of the session's tenant; `manage=True` needs owner or admin.
    Sets request.tenant, request.membership and request.memberships (all the user's, for
    the header's tenant picker)."""

    def decorate(fn):
        @login_required
        @wraps(fn)
        def wrapper(request, *args, **kwargs):
            membership, memberships = session_memberships(request)
            if membership is None:
                raise Http404("You are not a member of any tenant.")
            if manage and not membership.can_manage:
                raise PermissionDenied("Only owners and admins may do this.")
            request.tenant = membership.tenant
            request.membership = membership
            request.memberships = memberships
            return fn(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view else decorate
