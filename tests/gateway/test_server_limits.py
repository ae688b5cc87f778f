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


@pytest.mark.parametrize("host", [b"127.0.0.1", b"evil.example"], ids=["413", "400 for the Host"])
def test_an_answer_before_the_body_arrived_ends_the_connection_after_the_client_has_it(server, host):
    """A 100 MB body, refused on its length (or its Host) before it arrives. The client
    keeps sending: it reads the whole answer and then the end of the server's side, and
    the server drops the connection within its keep-alive timeout (5 s). The connection was
    kept open, the server reading the body to drop it, as long as data came."""
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.settimeout(0.1)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: " + host + b"\r\ncontent-type: application/json"
                     b"\r\ncontent-length: 100000000\r\n\r\n" + b"x" * 100_000)
        started, received, answered, dropped = time.monotonic(), b"", None, None
        while dropped is None and time.monotonic() - started < 12:
            try:
                sock.sendall(b"x" * 1_000)   # the client goes on sending its body
                if answered is None and not (chunk := sock.recv(65536)):
                    answered = time.monotonic() - started   # the answer, then the end of it
                received += chunk if answered is None else b""
            except TimeoutError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                dropped = time.monotonic() - started
            time.sleep(0.05)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413" if host == b"127.0.0.1" else b"HTTP/1.1 400")
    assert json.loads(body)["error"]["message"]
    assert answered is not None and answered < 1, "the server's side never ended"
    assert dropped is not None and 4 < dropped < 8, f"not dropped after {time.monotonic() - started:.1f} s"


def test_a_request_queued_behind_an_answered_one_is_served_whole(server):
    """Pipelined: a request whose body is still arriving waits behind one being answered.
    When the first answer ends, the unfinished body is the queued request's, not the
    answered one's: the connection stays, and the second request is answered too."""
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.settimeout(5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
                     b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                     b"content-length: 13\r\n\r\n{\"model\":")
        received = b""
        while b"HTTP/1.1 200" not in received:
            received += sock.recv(65536)
        time.sleep(0.3)   # the first answer is out; the second body is still unfinished
        sock.sendall(b'"x"}')
        while received.count(b"HTTP/1.1 ") < 2 and (chunk := sock.recv(65536)):
            received += chunk
    assert received.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 401" in received


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
