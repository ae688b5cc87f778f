"""A bug of ours still answers in the client's error shape, with a request id, and is
counted in /metrics: run through the real ASGI handler in this process."""

import orjson
import pytest

from apps.core import metrics
from apps.gateway import pipeline
from tests.gateway.inprocess import through_handler


def counted(endpoint: str, status: str) -> float:
    return metrics.REQUESTS.labels(endpoint, status)._value.get()


@pytest.fixture
def broken_admission(monkeypatch):
    async def admit(call, headers):
        raise RuntimeError("a bug in admission")

    monkeypatch.setattr(pipeline, "admit", admit)


@pytest.mark.parametrize("path, endpoint, headers", [
    ("/v1/chat/completions", "chat.completions", []),
    ("/v1/messages", "messages", [(b"anthropic-version", b"2023-06-01")]),
])
def test_an_unexpected_exception_answers_500_in_the_clients_shape(broken_admission, path, endpoint, headers):
    requests, unhandled = counted(endpoint, "500"), metrics.UNHANDLED.labels(endpoint)._value.get()
    request = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    status, response_headers, body = through_handler(path, request, headers)
    assert status == 500
    assert response_headers["x-request-id"].startswith("req_")
    error = orjson.loads(body)
    if endpoint == "messages":
        assert error == {"type": "error", "error": {"type": "api_error",
                                                    "message": "The gateway failed to process the request."}}
    else:
        assert error == {"error": {"message": "The gateway failed to process the request.", "type": "server_error",
                                   "param": None, "code": "internal_error"}}
    assert counted(endpoint, "500") == requests + 1
    assert metrics.UNHANDLED.labels(endpoint)._value.get() == unhandled + 1
