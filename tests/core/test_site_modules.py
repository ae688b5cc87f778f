"""What a web worker holds once it has served the site: pages and the management API
load neither the Stripe SDK nor Celery nor jsonschema (issue 14: under 200 MB per worker,
bench/startup). They are imported where a task is sent, Stripe is called or an answer is
checked against a JSON schema, and not before."""

import json
import os
import subprocess
import sys

import pytest
from django.test import Client

from apps.tenants import services
from tests import factories
from tests.live import ROOT

SERVE_THEN_LIST_MODULES = """
import asyncio, json, sys
from akaplatform.asgi import application
async def get(path, headers):
    status, asked = [], False
    async def receive():
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the response is written
    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
    await application({"type": "http", "method": "GET", "path": path, "query_string": b"", "root_path": "",
                       "headers": [(b"host", b"127.0.0.1"), *((k.encode(), v.encode()) for k, v in headers.items())],
                       "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "scheme": "http",
                       "http_version": "1.1", "asgi": {"version": "3.0"}}, receive, send)
    return status[0]
statuses = [asyncio.run(get(path, headers)) for path, headers in json.loads(sys.argv[1])]
print(statuses, sorted(m for m in ("stripe", "celery", "kombu", "jsonschema") if m in sys.modules))
"""


@pytest.mark.django_db(transaction=True)
def test_pages_and_the_management_api_load_neither_stripe_nor_celery_nor_jsonschema(test_database_url, settings):
    tenant, owner = factories.make_tenant()
    raw_key = services.api_key_issue(tenant=tenant, name="admin", scope="admin")[1]
    browser = Client()
    browser.force_login(owner)
    cookie = {"cookie": f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"}
    key = {"authorization": f"Bearer {raw_key}"}
    asked = [("/", cookie), ("/invoices/", cookie), ("/api/keys/", key), ("/api/billing/", key)]
    # With the Stripe fake on, as in the demo: pages may ask whether Stripe is configured.
    out = subprocess.run([sys.executable, "-c", SERVE_THEN_LIST_MODULES, json.dumps(asked)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "akaplatform.settings",
                              "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": test_database_url,
                              "REDIS_URL": settings.REDIS_URL, "AKA_STRIPE_FAKE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[200, 200, 200, 200] []"
