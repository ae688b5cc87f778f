"""The header's tenant picker: shown to a person in two or more tenants, and read by the
query that resolves their tenant anyway (no page gains a query)."""

import re

import pytest

from apps.tenants.models import Membership
from tests.dashboard.test_query_counts import PAGES

pytestmark = pytest.mark.django_db


def picker(html: str) -> list[tuple[str, str, str]] | None:
    """(tenant id, " selected" or "", name) for each option of the header's picker."""
    form = re.search(r'<form method="post" action="/accounts/tenant/".*?</form>', html, re.S)
    return form and re.findall(r'<option value="(\d+)"( selected)?>([^<]*)</option>', form.group(0))


def test_one_membership_shows_no_picker(client, party):
    client.force_login(party.alice)
    assert picker(client.get("/").content.decode()) is None


def test_two_memberships_show_a_picker_of_their_tenants_with_the_current_one_selected(client, party):
    Membership.objects.for_tenant(party.tenant).create(tenant=party.tenant, user=party.charlie)
    client.force_login(party.charlie)
    for url in ("/", "/calls/", "/keys/", "/invoices/"):
        assert picker(client.get(url).content.decode()) == [
            (str(party.other_tenant.pk), " selected", "Other Inc"), (str(party.tenant.pk), "", "Alpha Corp")], url
    client.post("/accounts/tenant/", {"tenant": party.tenant.pk})
    assert picker(client.get("/keys/").content.decode()) == [
        (str(party.other_tenant.pk), "", "Other Inc"), (str(party.tenant.pk), " selected", "Alpha Corp")]


def test_the_picker_costs_no_query(client, party, django_assert_num_queries):
    Membership.objects.for_tenant(party.tenant).create(tenant=party.tenant, user=party.charlie)
    client.force_login(party.charlie)
    for url in ("/keys/", "/invoices/"):
        with django_assert_num_queries(PAGES[url]):
            assert client.get(url).status_code == 200
