from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404

from apps.tenants.sessions import session_membership


def tenant_member(view=None, *, manage: bool = False):
    """Logged-in member of the session's tenant; `manage=True` needs owner or admin.
    Sets request.tenant and request.membership."""

    def decorate(fn):
        @login_required
        @wraps(fn)
        def wrapper(request, *args, **kwargs):
            membership = session_membership(request)
            if membership is None:
                raise Http404("You are not a member of any tenant.")
            if manage and not membership.can_manage:
                raise PermissionDenied("Only owners and admins may do this.")
            request.tenant = membership.tenant
            request.membership = membership
            return fn(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view else decorate
