"""Every error status, raised as the OpenAI SDK's matching exception, in OpenAI's shape."""

import json

import httpx
import openai
import pytest

from apps.core.errors import ApiError
from apps.gateway import openai_wire
from apps.tenants import services
from apps.tenants.models import Tenant
from tests import factories


def sdk(live, key=None, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key or live.raw_key, max_retries=0, **kw)


def ask(client, content="hello", model="gpt-4o-mini", **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **kw)


def post(live, body: bytes | str, key=None):
    return httpx.post(f"{live.url}/v1/chat/completions", content=body,
                      headers={"authorization": f"Bearer {key or live.raw_key}", "content-type": "application/json"})


def test_invalid_json_is_400(live):
    response = post(live, b"{not json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")
    [row] = live.records()
    assert (row.status_code, row.billable, row.error_type) == (400, False, "invalid_json")


@pytest.mark.parametrize("body, param", [
    ({"model": "gpt-4o-mini"}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
])
def test_missing_fields_are_400_naming_the_param(live, body, param):
    response = post(live, json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("body, param", [
    ({"model": "gpt-4o-mini", "messages": []}, "messages"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}, "max_tokens"),
])
def test_invalid_fields_are_400_naming_the_param(live, body, param):
    with pytest.raises(openai.BadRequestError) as err:
        sdk(live).chat.completions.create(**body)
    assert err.value.status_code == 400
    assert err.value.body["param"] == param


def test_unknown_key_is_401(live):
    with pytest.raises(openai.AuthenticationError) as err:
        ask(sdk(live, key="aka_" + "z" * 43))
    assert err.value.code == "invalid_api_key"
    assert live.records(expected=0, timeout=0.2) == []  # no tenant, no ledger row


def test_revoked_key_is_401(live):
    services.api_key_revoke(tenant=live.tenant, key_id=live.key.pk)
    with pytest.raises(openai.AuthenticationError):
        ask(sdk(live))


def test_suspended_tenant_is_403(live):
    services.tenant_set_status(tenant=live.tenant, status=Tenant.Status.SUSPENDED)
    with pytest.raises(openai.PermissionDeniedError) as err:
        ask(sdk(live))
    assert err.value.code == "account_suspended"


def test_unknown_model_is_404(live):
    with pytest.raises(openai.NotFoundError) as err:
        ask(sdk(live), model="gpt-9-ultra")
    assert (err.value.type, err.value.code, err.value.param) == ("invalid_request_error", "model_not_found", "model")
    [row] = live.records()
    assert (row.status_code, row.model_requested, row.model_served) == (404, "gpt-9-ultra", "")


def test_body_over_the_limit_is_413(live):
    with pytest.raises(openai.APIStatusError) as err:
        ask(sdk(live), content="x" * (300 * 1024))
    assert err.value.status_code == 413
    assert err.value.body["code"] == "request_too_large"


def test_rate_limit_is_429_with_retry_after(live):
    services.tenant_set_rate_limits(tenant=live.tenant, rpm=2, key_rpm=None)
    _, key = factories.make_key(live.tenant, "fresh")  # a key no process has cached yet
    client = sdk(live, key=key)
    ask(client)
    ask(client)
    with pytest.raises(openai.RateLimitError) as err:
        ask(client)
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
    rows = live.records(expected=3)
    assert [r.status_code for r in rows] == [200, 200, 429]
    assert [r.billable for r in rows] == [True, True, False]


def test_upstream_failure_on_every_model_is_502(live):
    with pytest.raises(openai.InternalServerError) as err:
        ask(sdk(live), content="hi [[fault:500]]", model="gpt-4o-mini")
    assert err.value.status_code == 502
    [row] = live.records()
    assert (row.status_code, row.billable, row.error_type) == (502, False, "upstream_error")
    # gpt-4o-mini, then its fallbacks claude-haiku-4-5 and gemini-2.5-flash, 3 attempts each.
    assert row.attempts == 9


def test_upstream_timeout_everywhere_is_504(live):
    with pytest.raises(openai.InternalServerError) as err:
        ask(sdk(live, timeout=30), content="hi [[fault:stall]]", model="llama-3.1-8b-instruct")
    assert err.value.status_code == 504
    assert err.value.body["code"] == "upstream_timeout"


# Each refusal the gateway answers, as the OpenAI SDK raises it: OpenAI's own `type` for the
# same case (its 401, 403 and 404 are invalid_request_error; a spent quota is
# insufficient_quota, which clients must not retry as they retry a rate limit).
@pytest.mark.parametrize("status, code, raised, kind", [
    (400, "invalid_json", openai.BadRequestError, "invalid_request_error"),
    (401, "invalid_api_key", openai.AuthenticationError, "invalid_request_error"),
    (401, "missing_api_key", openai.AuthenticationError, "invalid_request_error"),
    (402, "payment_required", openai.APIStatusError, "billing_not_active"),
    (403, "account_suspended", openai.PermissionDeniedError, "invalid_request_error"),
    (404, "model_not_found", openai.NotFoundError, "invalid_request_error"),
    (404, "unknown_url", openai.NotFoundError, "invalid_request_error"),
    (405, None, openai.APIStatusError, "invalid_request_error"),
    (408, "body_timeout", openai.APIStatusError, "invalid_request_error"),
    (413, "request_too_large", openai.APIStatusError, "invalid_request_error"),
    (429, "rate_limit_exceeded", openai.RateLimitError, "rate_limit_error"),
    (429, "insufficient_quota", openai.RateLimitError, "insufficient_quota"),
    (500, "internal_error", openai.InternalServerError, "server_error"),
    (502, "upstream_error", openai.InternalServerError, "server_error"),
    (503, "database_unavailable", openai.InternalServerError, "service_unavailable_error"),
    (504, "upstream_timeout", openai.InternalServerError, "server_error"),
])
def test_each_error_reaches_the_sdk_with_openais_type(status, code, raised, kind):
    error = ApiError(status, "refused", code=code, param="model")
    answer = httpx.MockTransport(lambda request: httpx.Response(status, content=openai_wire.error_body(error, "req_1")))
    client = openai.OpenAI(base_url="http://gateway/v1", api_key="aka_x", max_retries=0,
                           http_client=httpx.Client(transport=answer))
    with pytest.raises(raised) as err:
        ask(client)
    assert type(err.value) is raised
    assert (err.value.status_code, err.value.type, err.value.code, err.value.param, err.value.body["message"]) == (
        status, kind, code, "model", "refused")
