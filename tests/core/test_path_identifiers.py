"""Object ids in URL paths (calls, invoices, keys, signup tokens) are letters, digits, `_`
and `-`: anything else, a NUL above all (PostgreSQL text cannot hold one, and the lookup
answered 500), is a 404 before a view runs."""

import pytest
from rest_framework.test import APIClient

from tests import factories

pytestmark = pytest.mark.django_db

PAGES = [("get", "/calls/req_a%00b/"), ("get", "/invoices/in%00/"), ("get", "/invoices/in%00/csv"),
         ("post", "/keys/k%00/rename/"), ("post", "/keys/k%00/revoke/"), ("get", "/accounts/signup/confirm/t%00/")]
API = [("get", "/api/invoices/in%00/"), ("get", "/api/invoices/in%00/lines/"), ("get", "/api/invoices/in%00/csv"),
       ("get", "/api/keys/k%00/"), ("delete", "/api/keys/k%00/"), ("get", "/api/cache/keys/k%00/"),
       ("delete", "/api/cache/keys/k%00/")]


@pytest.mark.parametrize("method, url", PAGES)
def test_a_page_with_a_nul_in_its_id_is_404(client, party, method, url):
    client.force_login(party.alice)
    assert getattr(client, method)(url).status_code == 404


@pytest.mark.parametrize("method, url", API)
def test_the_management_api_with_a_nul_in_an_id_is_404(method, url):
    tenant, _ = factories.make_tenant()
    _, raw = factories.make_key(tenant, "admin", scope="admin")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert getattr(api, method)(url).status_code == 404
