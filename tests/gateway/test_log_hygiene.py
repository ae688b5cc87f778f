"""Secrets and prompts never reach the logs at the default level, even for a tenant that
logs prompts in its ledger, and even when calls fail in every way we can provoke."""

from urllib.parse import quote

import httpx
import pytest
from django.conf import settings

from apps.providers.catalog import sync_from_seed
from apps.tenants import services
from tests import factories
from tests.conftest import _wait_for_catalog, _wait_until_the_gateway_is_quiet
from tests.live import start_gateway

PROMPT = "my account number is 99887766 and my secret word is MARMALADE-QUASAR"


@pytest.fixture(scope="module")
def logged_gateway(django_db_setup, simulator, tmp_path_factory):
    db = settings.DATABASES["default"]
    log_path = tmp_path_factory.mktemp("logs") / "gateway.log"
    env = {"AKA_UPSTREAM_READ_TIMEOUT": "0.5", "AKA_RETRY_BASE_DELAY": "0.01", "AKA_KEY_CACHE_TTL": "0.5",
           "AKA_CATALOG_TTL": "0.05"}
    url, stop = start_gateway(database_url=f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
                              redis_url=settings.REDIS_URL, simulator_url=simulator, extra_env=env, log_path=log_path)
    yield url, log_path, stop
    stop()


def test_no_key_and_no_prompt_in_the_logs(transactional_db, logged_gateway, sim):
    url, log_path, stop = logged_gateway
    sync_from_seed()
    tenant, _ = factories.make_tenant("Loggy")
    services.tenant_update_settings(tenant=tenant, changes={"log_prompts": True})
    _, raw = factories.make_key(tenant)
    _, admin_raw = factories.make_key(tenant, "ops", scope="admin")
    _wait_for_catalog(url, raw)
    auth = {"authorization": f"Bearer {raw}"}
    fresh = {**auth, "x-aka-cache": "off"}  # the faults must reach the upstream, not the cache
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
    calls = [
        ("post", "/v1/chat/completions", auth, chat),                                    # a miss
        ("post", "/v1/chat/completions", auth, chat),                                    # an exact hit
        ("post", "/v1/chat/completions", auth, {**chat, "stream": True}),                # a stream
        ("post", "/v1/chat/completions", fresh, {**chat, "messages": [                   # every model fails
            {"role": "user", "content": PROMPT + " [[fault:500]]"}]}),
        ("post", "/v1/chat/completions", fresh, {**chat, "messages": [                   # every model stalls
            {"role": "user", "content": PROMPT + " [[fault:stall]]"}]}),
        ("post", "/v1/chat/completions", fresh, {**chat, "stream": True, "messages": [   # cut mid-stream
            {"role": "user", "content": PROMPT + " [[fault:cut]]"}]}),
        ("post", "/v1/chat/completions", auth, {"model": "no-such-model", "messages": chat["messages"]}),
        ("post", "/v1/chat/completions", {"authorization": f"Bearer {raw[:-4]}XXXX"}, chat),  # a wrong key
        ("post", "/v1/messages", {"x-api-key": raw}, {**chat, "max_tokens": 20}),
        ("get", "/api/settings/", auth, None),                                           # inference key: 403
        ("patch", "/api/settings/", {"authorization": f"Bearer {admin_raw}"}, {"log_prompts": True}),
        ("delete", "/api/cache/", {"authorization": f"Bearer {admin_raw}"}, None),
    ]
    statuses = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path, headers, body in calls:
            statuses.append(client.request(method, path, headers=headers, json=body).status_code)
        client.post("/v1/chat/completions", headers=auth, content=b'{"model": "gpt-4o-mini", "messages": [' + PROMPT.encode())
    assert statuses == [200, 200, 200, 502, 504, 200, 404, 401, 200, 403, 200, 200]
    _wait_until_the_gateway_is_quiet()
    stop()  # flushes and closes its output
    logs = log_path.read_text(errors="replace")
    for secret in (raw, raw[4:], raw[-16:], admin_raw, admin_raw[-16:], "MARMALADE-QUASAR", "99887766"):
        assert secret not in logs
