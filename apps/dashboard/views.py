"""The tenant's pages. Each view resolves the caller (decorators.tenant_member), reads
through selectors or writes through services, and renders the page or, for htmx, the
fragment that changed."""


from django.conf import settings
from django.contrib import messages
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_GET, require_POST

from apps.audit.selectors import audit_trail
from apps.billing import invoices as billing_invoices
from apps.billing import selectors as billing_selectors
from apps.cache.selectors import cache_settings_for
from apps.tenants import selectors as tenant_selectors
from apps.tenants.forms import ApiKeyForm
from apps.tenants.services import LastOwner

from . import selectors, services
from .charts import line_chart, share_bars
from .decorators import tenant_member
from .forms import CallFilter, InviteForm, KeyNameForm, RoleForm

# --- overview -----------------------------------------------------------------------------

def _parsed(parse, value: str):
    """A date or datetime from the query string; None when absent or not a real one."""
    try:
        return parse(value) if value else None
    except ValueError:  # well-formed but impossible, such as 2026-02-30
        return None


def _period(request) -> selectors.Period:
    return selectors.period_of(key=request.GET.get("period", "7d"), start=_parsed(parse_date, request.GET.get("start")),
                               end=_parsed(parse_date, request.GET.get("end")))


@tenant_member
@require_GET
def overview(request):
    period = _period(request)
    numbers = selectors.overview(tenant=request.tenant, period=period,
                                 baseline_model=selectors.baseline_model_of(tenant=request.tenant))
    times = [p.t for p in numbers.series]
    time_fmt = "%H:%M" if period.key == "today" else "%b %d"
    context = {
        "tenant": request.tenant, "o": numbers, "period": period, "periods": selectors.PERIODS,
        "cache_settings": cache_settings_for(tenant=request.tenant),
        "refresh_seconds": settings.AKA_OVERVIEW_REFRESH_SECONDS, "query": request.GET.urlencode(),
        "calls_chart": line_chart("Calls and cache hits", times, [
            ("Calls", "s1", [p.calls for p in numbers.series]),
            ("Cache hits", "s2", [p.hits for p in numbers.series])], fmt=lambda v: f"{v:g}", time_fmt=time_fmt),
        "cost_chart": line_chart("Cost against the baseline", times, [
            (f"On {numbers.baseline_model}", "s3", [p.counterfactual_usd for p in numbers.series]),
            ("Provider cost", "s1", [p.provider_usd for p in numbers.series])],
            fmt=lambda v: f"${v:.6g}", time_fmt=time_fmt),
        "model_bars": share_bars(numbers.models),
    }
    template = "dashboard/overview.html#numbers" if request.htmx and request.htmx.target == "numbers" else \
        "dashboard/overview.html"
    return render(request, template, context)


# --- calls --------------------------------------------------------------------------------

def _cursor(value: str):
    at, _, pk = value.rpartition("_")
    moment = _parsed(parse_datetime, at)
    # isascii: str.isdigit accepts digits int() refuses, such as "²".
    return (moment, int(pk)) if moment and pk.isascii() and pk.isdigit() else None


def _next_page(request, param: str, rows, more: bool) -> str:
    """The URL of the page after `rows` (cursor `param` past its last row, the other
    parameters kept), or "" when there is none; `_cursor` reads it back."""
    if not more:
        return ""
    query = request.GET.copy()
    query[param] = f"{rows[-1].created_at.isoformat()}_{rows[-1].pk}"
    return f"{request.path}?{query.urlencode()}"


@tenant_member
@require_GET
def calls(request):
    tenant = request.tenant
    filters = CallFilter(request.GET, queryset=selectors.calls_of(tenant=tenant),
                         keys=tenant_selectors.api_key_list(tenant=tenant), models=selectors.models_seen(tenant=tenant))
    queryset = filters.qs if filters.is_valid() else selectors.calls_of(tenant=tenant).none()
    rows, more = selectors.calls_page(calls=queryset, before=_cursor(request.GET.get("before", "")))
    context = {"filters": filters, "rows": rows, "next_page": _next_page(request, "before", rows, more),
               "tenant": tenant}
    if request.htmx and request.htmx.target == "calls-more":
        return render(request, "dashboard/calls.html#rows", context)
    if request.htmx and request.htmx.target == "call-log":
        return render(request, "dashboard/calls.html#log", context)
    return render(request, "dashboard/calls.html", context)


@tenant_member
@require_GET
def call_detail(request, request_id):
    call = selectors.access_call(tenant=request.tenant, request_id=request_id)
    return render(request, "dashboard/call.html", {
        "call": call, "entry": selectors.cache_entry_of(tenant=request.tenant, entry_id=call.cache_entry_id),
        "show_prompt": request.tenant.log_prompts, "tenant": request.tenant})


# --- invoices -----------------------------------------------------------------------------

@tenant_member
@require_GET
def invoice_list(request):
    rows = [(invoice, billing_selectors.invoice_amounts(invoice=invoice))
            for invoice in billing_selectors.invoice_list(tenant=request.tenant)]
    return render(request, "dashboard/invoices.html", {"tenant": request.tenant, "rows": rows})


@tenant_member
@require_GET
def invoice_detail(request, invoice_id):
    invoice = billing_selectors.access_invoice(tenant=request.tenant, invoice_id=invoice_id)
    lines, more = billing_selectors.invoice_lines_page(invoice=invoice, after=_cursor(request.GET.get("after", "")))
    context = {"tenant": request.tenant, "invoice": invoice, "lines": lines,
               "next_page": _next_page(request, "after", lines, more)}
    if request.htmx and request.htmx.target == "lines-more":
        return render(request, "dashboard/invoice.html#lines", context)
    context["amounts"] = billing_selectors.invoice_amounts(invoice=invoice)
    return render(request, "dashboard/invoice.html", context)


@tenant_member
@require_GET
def invoice_csv(request, invoice_id):
    return billing_invoices.csv_response(billing_selectors.access_invoice(tenant=request.tenant, invoice_id=invoice_id))


# --- keys ---------------------------------------------------------------------------------

def _keys_context(request, **extra):
    return {"tenant": request.tenant, "keys": tenant_selectors.api_key_list(tenant=request.tenant),
            "can_manage": request.membership.can_manage, "form": ApiKeyForm(), **extra}


@tenant_member
@require_GET
def keys(request):
    return render(request, "dashboard/keys.html", _keys_context(request))


@tenant_member(manage=True)
@require_POST
def key_create(request):
    form = ApiKeyForm(request.POST)
    context = {"form": form}
    if form.is_valid():
        key, raw = services.key_create(tenant=request.tenant, actor=request.user, name=form.cleaned_data["name"],
                                       scope=form.cleaned_data["scope"])
        context = {"new_key": key, "raw_key": raw}
    template = "dashboard/keys.html#key-panel" if request.htmx else "dashboard/keys.html"
    response = render(request, template, _keys_context(request, **context))
    response["Cache-Control"] = "no-store"  # the only page that ever carries a key's secret
    return response


def _key_row(request, key):
    if request.htmx:
        return render(request, "dashboard/keys.html#key-row", {"key": key, "can_manage": True})
    return redirect("dashboard:keys")


@tenant_member(manage=True)
@require_POST
def key_rename(request, key_id):
    form = KeyNameForm(request.POST)
    if not form.is_valid():
        key = tenant_selectors.access_api_key(tenant=request.tenant, key_id=key_id)
        return _key_row(request, key)
    key = services.key_rename(tenant=request.tenant, actor=request.user, key_id=key_id, name=form.cleaned_data["name"])
    return _key_row(request, key)


@tenant_member(manage=True)
@require_POST
def key_revoke(request, key_id):
    return _key_row(request, services.key_revoke(tenant=request.tenant, actor=request.user, key_id=key_id))


# --- settings -----------------------------------------------------------------------------

def _settings_context(request, bound=None, **extra):
    tenant, membership = request.tenant, request.membership
    sections = []
    for section in services.SECTIONS:
        form = bound if bound is not None and bound.prefix == section.key else \
            section.form(initial=section.read(tenant=tenant), prefix=section.key)
        sections.append({"section": section, "form": form, "editable": services.may_change(section, membership)})
    return {"tenant": tenant, "sections": sections, "members": tenant_selectors.members_of(tenant=tenant),
            "invite": InviteForm(), "roles": RoleForm.base_fields["role"].choices,
            "is_owner": membership.role == membership.Role.OWNER, "me": membership,
            "trail": audit_trail(tenant=tenant, limit=20), "observed": selectors.observed_wrong_hits(tenant=tenant),
            **extra}


@tenant_member(manage=True)
@require_GET
def settings_page(request):
    return render(request, "dashboard/settings.html", _settings_context(request))


@tenant_member(manage=True)
@require_POST
def settings_save(request, section_key):
    section = services.SECTION_BY_KEY.get(section_key)
    if section is None:
        raise Http404("No such settings section")
    if not services.may_change(section, request.membership):
        raise PermissionDenied("Only the owner may change this.")
    form = section.form(request.POST, prefix=section.key)
    if not form.is_valid():
        return render(request, "dashboard/settings.html", _settings_context(request, bound=form), status=400)
    try:
        changed = services.settings_change(tenant=request.tenant, actor=request.user, section=section,
                                           values=form.cleaned_data)
    except ValueError as refused:  # the owning app's own checks (routing's pool against the catalog)
        for name, message in getattr(refused, "errors", {None: str(refused)}).items():
            form.add_error(name if name in form.fields else None, message)
        return render(request, "dashboard/settings.html", _settings_context(request, bound=form), status=400)
    messages.success(request, f"{section.title}: saved ({', '.join(changed) or 'no changes'}).")
    return redirect("dashboard:settings")


def _owner_guard(request, role: str | None, membership_id) -> None:
    """Only an owner may make, unmake or remove an owner."""
    if request.membership.role == request.membership.Role.OWNER:
        return
    target = tenant_selectors.access_membership(tenant=request.tenant, membership_id=membership_id) \
        if membership_id is not None else None
    if role == "owner" or (target is not None and target.role == "owner"):
        raise PermissionDenied("Only an owner may change owners.")


@tenant_member(manage=True)
@require_POST
def member_invite(request):
    form = InviteForm(request.POST)
    if not form.is_valid():
        return render(request, "dashboard/settings.html", _settings_context(request, invite=form), status=400)
    _owner_guard(request, form.cleaned_data["role"], None)
    invitation = services.member_invite(tenant=request.tenant, actor=request.user, **form.cleaned_data)
    membership = invitation.membership
    if invitation.new_account or invitation.added:
        _send_invitation(request, membership, new_account=invitation.new_account)
    messages.success(request, f"Invited {membership.user.email} as {membership.role}.")
    return redirect("dashboard:settings")


def _send_invitation(request, membership, *, new_account: bool) -> None:
    """A new person sets their password through a one-time link (Django's reset token); one
    with an account signs in as before, and is told the tenant is theirs to pick."""
    # On one line: a tenant may be named across lines, and a line break in a mail's subject
    # is refused (BadHeaderError: the invitation answered 500, its mail never sent).
    user, name = membership.user, " ".join(request.tenant.name.split())
    if new_account:
        subject, how = f"You are invited to {name} on AkaRouter", "Choose your password here to sign in:\n" + (
            request.build_absolute_uri(reverse("password_reset_confirm", kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user)})))
    else:
        subject, how = f"You were added to {name} on AkaRouter", (
            f"Sign in with your account as usual, then choose {name} in the tenant picker at the top of the"
            f" dashboard:\n{request.build_absolute_uri(reverse('login'))}")
    send_mail(subject, f"{request.user.email} added you to {name} as {membership.role}.\n\n{how}\n", None,
              [user.email])


@tenant_member(manage=True)
@require_POST
def member_role(request, membership_id):
    form = RoleForm(request.POST)
    if not form.is_valid():
        raise Http404("No such role")
    _owner_guard(request, form.cleaned_data["role"], membership_id)
    try:
        services.member_set_role(tenant=request.tenant, actor=request.user, membership_id=membership_id,
                                 role=form.cleaned_data["role"])
    except LastOwner as err:
        messages.error(request, str(err))
    return redirect("dashboard:settings")


@tenant_member(manage=True)
@require_POST
def member_remove(request, membership_id):
    _owner_guard(request, None, membership_id)
    try:
        services.member_remove(tenant=request.tenant, actor=request.user, membership_id=membership_id)
    except LastOwner as err:
        messages.error(request, str(err))
    return redirect("dashboard:settings")


