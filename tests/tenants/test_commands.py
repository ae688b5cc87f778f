import re
from io import StringIO

from django.core.management import call_command
from django.http import HttpRequest

from apps.tenants.keyauth import resolve_key
from apps.tenants.models import Tenant
from tests import factories


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_tenant_issue_key_and_list(db):
    factories.ensure_plans()
    out = run("create_tenant", "Globex", "--owner-email", "gus@example.com", "--plan", "Growth", "--key")
    tenant = Tenant.objects.get(slug="globex")
    assert tenant.plan.name == "Growth"
    first = re.search(r"aka_\S{43}", out).group(0)
    assert resolve_key(first).tenant_id == tenant.pk

    second = run("issue_key", "globex", "--name", "batch").strip()
    assert resolve_key(second).tenant_id == tenant.pk

    listing = run("list_tenants")
    assert re.search(r"globex\s+Growth\s+active\s+2\s+Globex", listing)


def test_demo_setup_is_idempotent_and_its_login_works(db, client):
    factories.ensure_plans()
    email, password, key = run("demo_setup", "--password", "first-password-1").split()
    # A later run with another password (an earlier run died before saving it) and the old key.
    again_email, again_password, again_key = run("demo_setup", "--password", "second-password-2",
                                                 "--reuse-key", key).split()
    assert (again_email, again_key) == (email, key)
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert client.login(request=HttpRequest(), username=email, password="second-password-2")
    assert resolve_key(key).tenant_id == Tenant.objects.get(slug="demo").pk
