from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse

from apps.tenants.sessions import session_memberships

STALE = ("This page was opened for another tenant than the one now chosen (in another tab?): nothing was changed. "
         "Reload the page and try again.")


def _acting_for(request, tenant_id: int) -> bool:
    """Whether a change is meant for the session's tenant. A page names the tenant it was
    made for in its forms (acting_for) and htmx requests (X-Acting-For): after a switch in
    another tab, or a removal that moved the session to another tenant, a form left open
    would otherwise change the new tenant (an invitation, a key, its settings)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    claimed = request.headers.get("X-Acting-For") or request.POST.get("acting_for")
    return claimed is None or claimed == str(tenant_id)


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
            if not _acting_for(request, membership.tenant_id):
                refused = HttpResponse(STALE, status=409, content_type="text/plain")
                if request.htmx:   # htmx swaps no 4xx: the page reloads, showing the new tenant
                    refused["HX-Refresh"] = "true"
                return refused
            request.tenant = membership.tenant
            request.membership = membership
            request.memberships = memberships
            return fn(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view else decorate
