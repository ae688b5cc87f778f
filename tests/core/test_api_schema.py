"""schemathesis over the management API's OpenAPI schema (drf-spectacular): generated
requests, valid and not, as an admin key of a tenant with data; none may get a 500.
Bounded (a few examples per operation) so the run takes seconds. The one 5xx the API
means is a 503 saying why (Checkout and the portal without Stripe configured)."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

from tests import factories

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def admin_key(transactional_db, party):  # a WSGI request closes the connection a test transaction holds
    factories.make_key(party.tenant, "someone's")
    return factories.make_key(party.tenant, "ops", scope="admin")[1]


def test_the_schema_lists_the_management_api():
    paths = set(schema.raw_schema["paths"])
    assert {"/api/keys/", "/api/keys/{key_id}/", "/api/settings/", "/api/cache/settings/"} <= paths


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_500(case, admin_key):
    response = case.call(headers={"Authorization": f"Bearer {admin_key}"})
    meant = response.status_code == 503 and "detail" in response.json()
    assert response.status_code < 500 or meant, (case.method, case.formatted_path, response.status_code, response.text)
