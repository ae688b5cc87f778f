"""The production server (akaplatform/server.py) bounds what a client can hold: a body
that never finishes, an oversized header block and thousands of headers, headers that
never finish and a connection that never sends a request. Run against the exact command
production uses, on a loopback port."""

import http.client
import json
import socket
import time
from urllib.parse import quote

import pytest
from django.conf import settings

from akaplatform.server import command
from tests.live import start_server

BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(django_db_setup, simulator):
    db = settings.DATABASES["default"]
    argv = command(host="127.0.0.1", port="{port}", workers=1)
    url, stop = start_server(argv, "/healthz", name="production server", timeout=120, env={
        "DATABASE_URL": f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL, "AKA_SIMULATOR_URL": simulator,
        "AKA_BODY_READ_TIMEOUT": str(BODY_TIMEOUT), "AKA_HEADER_READ_TIMEOUT_MS": "1000"})
    yield int(url.rsplit(":", 1)[1])
    stop()


def exchange(port: int, payload: bytes, wait: float = 10.0) -> tuple[bytes, float]:
    """Sends `payload`, reads until the server closes the connection; (bytes, seconds)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(wait)
        started = time.monotonic()
        sock.sendall(payload)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the connection was still open after {wait} s; got {received[:80]!r}")
        except ConnectionResetError:
            pass
        return received, time.monotonic() - started


def incomplete(path: bytes) -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: 100\r\n\r\n{\"model\":")


def test_a_gateway_body_that_never_finishes_gets_408_in_json_and_is_closed(server):
    received, _ = exchange(server, incomplete(b"/v1/chat/completions"))
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b'"code":"body_timeout"' in body.replace(b" ", b"")


def test_an_anthropic_body_that_never_finishes_gets_408_in_anthropics_shape_naming_the_call(server):
    received, _ = exchange(server, incomplete(b"/v1/messages"))
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    assert status.startswith("HTTP/1.1 408") and headers["connection"] == "close"
    assert headers["request-id"] == headers["x-request-id"] and headers["request-id"].startswith("req_")
    assert json.loads(body) == {"type": "error", "request_id": headers["request-id"], "error": {
        "type": "invalid_request_error", "message": "The request body did not arrive in time."}}


def test_a_management_api_body_that_never_finishes_gets_408_and_is_closed(server):
    received, _ = exchange(server, incomplete(b"/api/keys/"))
    assert received.startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize("headers", [
    b"x-big: " + b"a" * 1_000_000 + b"\r\n",
    b"".join(b"x-h%d: v\r\n" % n for n in range(5000)),
], ids=["one 1 MB header", "5000 headers"])
def test_oversized_header_blocks_are_refused(server, headers):
    received, _ = exchange(server, b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n" + headers + b"\r\n")
    assert received.startswith(b"HTTP/1.1 431")


@pytest.mark.parametrize("path", [b"/healthz", b"/api/keys/"])
def test_a_header_block_over_the_apps_limit_is_refused_by_the_app_outside_the_gateway(server, path):
    """40 KB: within what the server reads, over AKA_MAX_HEADER_BYTES (32 KB), so the
    application's own check answers, for the probes and Django alike."""
    received, _ = exchange(server, b"GET " + path + b" HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * 40_000
                           + b"\r\n\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert json.loads(body)["error"]["code"] == "headers_too_large"


def test_an_ordinary_request_is_served(server):
    received, _ = exchange(server, b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200")


def test_a_connection_that_sends_nothing_is_closed(server):
    received, _ = exchange(server, b"")
    assert received == b""


def test_headers_that_never_finish_are_closed(server):
    received, _ = exchange(server, b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
    assert received == b""


def test_a_kept_alive_connection_serves_its_next_request(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    conn.request("GET", "/healthz")
    first = conn.getresponse()
    assert (first.status, bool(first.read())) == (200, True)
    used = conn.sock
    time.sleep(1.5)  # longer than the header deadline: it is disarmed between requests
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200 and conn.sock is used
    conn.close()
