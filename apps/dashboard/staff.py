"""The staff console: every tenant's figures, billing reconciliation flags, tuning one
tenant's cache rule (target wrong-hit rate and threshold) with a preview of its effect, and
the audit trail. Django staff only."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from apps.audit.selectors import audit_trail, audit_trail_all
from apps.billing.selectors import meter_discrepancies
from apps.cache.selectors import cache_settings_for
from apps.tenants.models import Tenant

from . import selectors, services
from .forms import RuleForm
from .preview import DAYS, SAMPLE, Rule, rule_preview

FLAGS_SHOWN = 50  # the newest unresolved ones; the admin lists them all
COLUMNS = [("slug", "Tenant"), ("calls", "Calls (30 d)"), ("hit_rate", "Hit rate"), ("saving_usd", "Saving"),
           ("charged_usd", "Charged"), ("margin_usd", "Margin")]


@staff_member_required
@require_GET
def console(request):
    sort = request.GET.get("sort", "-calls")
    return render(request, "dashboard/staff/console.html", {
        "rows": selectors.tenants_figures(sort=sort), "sort": sort, "columns": COLUMNS,
        "discrepancies": meter_discrepancies()[:FLAGS_SHOWN]})


def _current(tenant) -> Rule:
    found = cache_settings_for(tenant=tenant)
    return Rule(found.threshold, found.target_wrong_hit_rate)


@staff_member_required
@require_http_methods(["GET", "POST"])
def tune(request, tenant_id):
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    current = _current(tenant)
    form = RuleForm(request.POST or None, initial={"threshold": current.threshold,
                                                    "target_wrong_hit_rate": current.target})
    if request.method == "POST" and form.is_valid():
        services.settings_change(tenant=tenant, actor=request.user, section=services.SECTION_BY_KEY["cache"],
                                 values=dict(form.cleaned_data), staff=True)
        messages.success(request, f"{tenant.slug}: cache rule applied.")
        return redirect("dashboard:staff-tune", tenant_id=tenant.pk)
    return render(request, "dashboard/staff/tune.html", {
        "tenant": tenant, "form": form, "current": current, "days": DAYS, "sample": SAMPLE,
        "trail": audit_trail(tenant=tenant, limit=10)}, status=400 if form.errors else 200)


@staff_member_required
@require_GET
def tune_preview(request, tenant_id):
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    current = _current(tenant)
    form = RuleForm(request.GET)
    preview = rule_preview(tenant=tenant, current=current, rule=Rule(
        form.cleaned_data["threshold"], form.cleaned_data.get("target_wrong_hit_rate", current.target))) \
        if form.is_valid() else None
    return render(request, "dashboard/staff/tune.html#preview", {"tenant": tenant, "form": form, "preview": preview,
                                                                 "current": current})


@staff_member_required
@require_GET
def audit(request):
    return render(request, "dashboard/staff/audit.html", {"events": audit_trail_all()})
