"""The production web server, in one place: `python -m akaplatform.server` (the image,
compose, Kubernetes and the benches run it). AKA_SERVER picks uvicorn (the default) or
granian; bench/servers.py measures both for this app. On this shared 2-core machine,
with production settings, one worker each: equal at concurrency 32 (652 and 647 calls/s),
granian quicker at concurrency 1 (p50 3.8 against 5.4 ms, 261 against 184 calls/s); both
finished an in-flight stream on SIGTERM and wrote its ledger row. uvicorn was chosen all
the same for what a killed worker costs: its supervisor's workers share one listening
socket, so a worker killed with -9 cost no other request
(tests/gateway/test_graceful_shutdown.py), where granian reset new connections until the
worker was back, and its two-worker shutdown overran 30 s.
granian does refuse oversized headers itself; with uvicorn the app does
(apps/core/request_limits.py). uvicorn arms no timer on a connection until it has
answered a request, so a connection that sends nothing, or headers that never end, was
held for ever: HeaderTimeout closes it after AKA_HEADER_READ_TIMEOUT_MS, as granian does.
It also ends a connection whose answer came before its request's body had arrived (see
HeaderTimeout.on_response_complete).

Environment: AKA_HOST (0.0.0.0), AKA_PORT (8000), AKA_WORKERS (CPU count); the
graceful-shutdown budget AKA_SHUTDOWN_SECONDS (30, in-flight streams finish and their
ledger rows are written within it); AKA_HEADER_READ_TIMEOUT_MS (10000).
"""

import os
import sys
import tempfile

SERVERS = ("uvicorn", "granian")


def command(*, server: str | None = None, host: str | None = None, port: int | str | None = None,
            workers: int | None = None, python: str = sys.executable) -> list[str]:
    server = server or os.environ.get("AKA_SERVER", "uvicorn")
    host = host or os.environ.get("AKA_HOST", "0.0.0.0")
    port = port or int(os.environ.get("AKA_PORT", "8000"))
    workers = workers or int(os.environ.get("AKA_WORKERS", str(os.cpu_count() or 1)))
    shutdown = os.environ.get("AKA_SHUTDOWN_SECONDS", "30")
    app = "akaplatform.asgi:application"
    if server == "granian":
        # Headers: at most 100 (hyper's bound) within a 408 KB buffer, else 431; a client
        # that starts a request and stalls its headers is dropped after the timeout. A
        # worker that dies is started again by granian's own supervisor.
        return [python, "-m", "granian", "--interface", "asgi", app, "--host", host, "--port", str(port),
                "--workers", str(workers), "--loop", "uvloop", "--no-access-log",
                "--http", "1", "--respawn-failed-workers",
                "--http1-header-read-timeout", os.environ.get("AKA_HEADER_READ_TIMEOUT_MS", "10000"),
                "--workers-kill-timeout", shutdown]
    if server == "uvicorn":
        # With --workers, uvicorn's supervisor starts a dead worker again. Keep-alive
        # connections idle for 5 s after a response are closed.
        return [python, "-m", "uvicorn", app, "--host", host, "--port", str(port), "--workers", str(workers),
                "--loop", "uvloop", "--http", "akaplatform.server:HeaderTimeout", "--no-access-log", "--lifespan", "on",
                "--timeout-keep-alive", "5", "--timeout-graceful-shutdown", shutdown]
    raise SystemExit(f"AKA_SERVER must be one of {', '.join(SERVERS)}, not {server!r}")


# Read once, where a worker imports this module: the timer is armed for every request.
HEADER_SECONDS = int(os.environ.get("AKA_HEADER_READ_TIMEOUT_MS", "10000")) / 1000


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - an image without uvicorn runs granian
    HttpToolsProtocol = object


class HeaderTimeout(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request's headers, counted
    from the connection's start or the request's first byte, and a lingering close after
    an answer given before the request's body arrived."""

    _header_timer = None
    _lingering = False

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(HEADER_SECONDS, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """An answer given before the request's body arrived (a 413, a 400 for a Host not
        served) ends the connection: uvicorn kept it, reading and dropping the whole body,
        for as long as the client kept sending. Not at once, which can reset the connection
        before the client has read the answer: our side is shut after the answer, and what
        the client still sends is dropped until it closes or the keep-alive timeout ends it.
        With a request queued behind it, the request answered had its body whole (`cycle` is
        the queued one). A transport that cannot shut one side (TLS) keeps uvicorn's way."""
        unread = not self.pipeline and self.cycle.more_body
        super().on_response_complete()
        if unread and not self.transport.is_closing() and self.transport.can_write_eof():
            self._lingering = True
            self.transport.write_eof()

    def data_received(self, data: bytes) -> None:
        if not self._lingering:   # lingering, data no longer cancels the keep-alive timeout
            super().data_received(data)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


if __name__ == "__main__":
    argv = command()
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Every worker writes its metrics here and /metrics adds them up, whichever
        # worker answers the scrape (apps/core/metrics.py).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="aka-metrics-")
    os.execv(argv[0], argv)
