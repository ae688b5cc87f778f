from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from apps.cache.selectors import cache_settings_for, cache_stats
from apps.tenants import selectors as tenant_selectors
from apps.tenants import services as tenant_services
from apps.tenants.forms import ApiKeyForm

from .decorators import tenant_member


@tenant_member
def overview(request):
    return render(request, "dashboard/overview.html", {
        "tenant": request.tenant,
        "cache": cache_stats(tenant=request.tenant),
        "cache_settings": cache_settings_for(tenant=request.tenant),
    })


def _keys_context(request, **extra):
    return {
        "tenant": request.tenant,
        "keys": tenant_selectors.api_key_list(tenant=request.tenant),
        "can_manage": request.membership.can_manage,
        "form": ApiKeyForm(),
        **extra,
    }


@tenant_member
@require_http_methods(["GET"])
def keys(request):
    return render(request, "dashboard/keys.html", _keys_context(request))


@tenant_member(manage=True)
@require_POST
def key_create(request):
    form = ApiKeyForm(request.POST)
    context = {"form": form}
    if form.is_valid():
        key, raw = tenant_services.api_key_issue(tenant=request.tenant, name=form.cleaned_data["name"],
                                                 scope=form.cleaned_data["scope"], created_by=request.user)
        context = {"new_key": key, "raw_key": raw}
    template = "dashboard/keys.html#key-panel" if request.htmx else "dashboard/keys.html"
    response = render(request, template, _keys_context(request, **context))
    response["Cache-Control"] = "no-store"
    return response


@tenant_member(manage=True)
@require_POST
def key_revoke(request, key_id):
    key = tenant_services.api_key_revoke(tenant=request.tenant, key_id=key_id)
    if request.htmx:
        return render(request, "dashboard/keys.html#key-row", {"key": key, "can_manage": True})
    return render(request, "dashboard/keys.html", _keys_context(request))
