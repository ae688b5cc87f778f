"""What the gateway's views read of a request (apps/gateway/handler.py), as Django's
request would give it."""

import types

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import path, re_path

from apps.gateway import handler
from apps.gateway.handler import GatewayHandler, Request
from apps.gateway.views import chat_completions, messages, model
from apps.gateway.wires import OPENAI


def request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"method": "POST", "path": "/v1/chat/completions", "headers": headers}, b"{}")


def test_headers_are_read_whatever_the_case_of_their_name():
    got = request([(b"authorization", b"Bearer aka_x"), (b"anthropic-version", b"2023-06-01")])
    assert got.headers.get("Authorization") == got.headers["AUTHORIZATION"] == "Bearer aka_x"
    assert "Anthropic-Version" in got.headers
    assert got.headers.get("x-api-key") is None
    assert got.headers.get("x-aka-cache", "") == ""
    assert (got.method, got.path, got.body) == ("POST", "/v1/chat/completions", b"{}")


def test_a_repeated_header_reads_as_its_values_joined_with_commas():
    got = request([(b"cache-control", b"no-cache"), (b"x-aka-cache", b"off"), (b"cache-control", b"no-store")])
    assert got.headers["cache-control"] == "no-cache,no-store"


def test_a_header_named_with_underscores_is_not_read_as_its_hyphenated_name():
    # Django drops such headers against spoofing; here they simply never match a lookup.
    assert request([(b"x_api_key", b"aka_x")]).headers.get("x-api-key") is None


def test_header_values_are_latin_1():
    assert request([(b"x-aka-cache-scope", "usér".encode("latin-1"))]).headers["x-aka-cache-scope"] == "usér"


def test_the_handler_finds_each_gateway_url_and_nothing_else():
    views = GatewayHandler().views
    assert views["/v1/chat/completions"] is chat_completions
    assert views["/v1/messages"] is messages
    assert set(views) == {"/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/models",
                          "/v1/embeddings", "/v1/feedback"}
    assert {prefix: route[:2] for prefix, route in GatewayHandler().last_segment.items()} == {
        "/v1/models/": (model, "model")}
    labels = GatewayHandler()
    assert labels._endpoint("/v1/models/gpt-4o", OPENAI) == labels._endpoint("/v1/models", OPENAI) == "models"
    assert labels._endpoint("/v1/feedback/x", OPENAI) == "chat.completions"   # no such URL: the wire's label


def test_a_url_whose_last_segment_is_a_parameter_is_found_by_what_comes_before_it(monkeypatch):
    urls = types.ModuleType("gateway_urls_with_a_last_parameter")
    urls.urlpatterns = [path("v1/calls/<int:pk>", chat_completions), path("v1/messages", messages)]
    monkeypatch.setattr(handler, "URLCONF", urls)
    found = GatewayHandler()
    assert found._find("/v1/calls/42") == (chat_completions, {"pk": 42})
    assert found._find("/v1/messages") == (messages, {})
    for unknown in ("/v1/calls/x", "/v1/calls/", "/v1/calls/4/2", "/v1/calls", "/v1/other/42"):
        assert found._find(unknown) == (None, None)


@pytest.mark.parametrize("routes", [
    [path("v1/<int:pk>/calls", chat_completions)], [re_path(r"^v1/x$", chat_completions)],
    [path("v1/<str:a>/<int:pk>", chat_completions)], [path("v1/calls/<int:pk>.json", chat_completions)],
    [path("v1/files/<path:name>", chat_completions)],
    [path("v1/calls/<int:pk>", chat_completions), path("v1/calls/<str:name>", messages)],
    [path("v1/calls/<int:pk>", chat_completions), path("v1/calls/latest", messages)]])
def test_a_gateway_url_the_dict_lookup_could_not_match_is_refused_at_start(monkeypatch, routes):
    urls = types.ModuleType("gateway_urls_with_a_parameter")
    urls.urlpatterns = [path("v1/messages", messages), *routes]
    monkeypatch.setattr(handler, "URLCONF", urls)
    with pytest.raises(ImproperlyConfigured, match="plain"):
        GatewayHandler()
