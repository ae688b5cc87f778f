"""Every model is in the Django admin, and its list pages answer for staff."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model

from apps.billing.models import BillingSettings
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db

# Models the admin cannot show: CacheEntry and RoutingSample have composite primary keys
# (Django's admin does not support those); Django's own bookkeeping tables.
EXEMPT = {"cache.cacheentry", "routing.routingsample", "contenttypes.contenttype", "sessions.session", "auth.permission",
          "admin.logentry"}


def test_every_model_is_registered_and_its_list_answers(client, party):
    client.force_login(get_user_model().objects.create_superuser("root", "root@x.test", "x"))
    for model in apps.get_models():
        label = model._meta.label_lower
        if label in EXEMPT or not model.__module__.startswith("apps."):
            continue
        assert admin.site.is_registered(model), label
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


def test_staff_add_and_change_a_tenants_rows_and_a_second_one_is_refused(admin_client, party):
    """Django's own uniqueness checks query the fail-closed tenant manager (a 500 before)."""
    bob = Membership.objects.for_tenant(party.tenant).get(user=party.bob)
    twice = admin_client.post("/admin/tenants/membership/add/",
                              {"tenant": party.tenant.pk, "user": party.bob.pk, "role": "admin"})
    assert twice.status_code == 200 and "with this tenant and user already exists" in twice.content.decode()
    assert admin_client.post("/admin/tenants/membership/add/",
                             {"tenant": party.other_tenant.pk, "user": party.bob.pk, "role": "member"}).status_code == 302
    assert admin_client.post(f"/admin/tenants/membership/{bob.pk}/change/",
                             {"tenant": party.tenant.pk, "user": party.bob.pk, "role": "admin"}).status_code == 302
    assert Membership.objects.for_tenant(party.tenant).get(pk=bob.pk).role == "admin"
    assert Membership.objects.for_tenant(party.other_tenant).filter(user=party.bob).exists()

    settings = {"tenant": party.tenant.pk, "baseline_model": "gpt-4o"}
    assert admin_client.post("/admin/billing/billingsettings/add/", settings).status_code == 302
    again = admin_client.post("/admin/billing/billingsettings/add/", settings)
    assert again.status_code == 200 and "already exists" in again.content.decode()
    assert BillingSettings.objects.for_tenant(party.tenant).count() == 1


def test_a_tenants_plan_cannot_be_changed_in_the_admin(admin_client, party):
    """Saved there, it skipped billing: Stripe billed the old price, and its next
    subscription event put the old plan back."""
    from apps.tenants.models import Plan

    starter, scale = party.tenant.plan, Plan.objects.exclude(pk=party.tenant.plan_id).first()
    saved = admin_client.post(f"/admin/tenants/tenant/{party.tenant.pk}/change/", {
        "name": party.tenant.name, "slug": party.tenant.slug, "plan": scale.pk, "status": "active"})
    assert saved.status_code == 302
    party.tenant.refresh_from_db()
    assert party.tenant.plan == starter
