"""The gateway's ASGI handler driven in this process, without a server: for tests that
patch or count what runs inside a call."""

import asyncio
import time

import orjson

from apps.core.lifecycle import run_shutdown
from apps.gateway.handler import GatewayHandler
from apps.routing import breaker
from tests.asgi import http_scope


def through_handler(path: str, body: bytes, headers: list[tuple[bytes, bytes]], *,
                    leave: bool = False) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one call, once its record stage has run. `leave`: the
    client hangs up once the first bytes of the answer's body reach it."""
    sent, given = [], []
    first_bytes = asyncio.Event()

    async def receive():
        if not given:
            given.append(body)
            return {"type": "http.request", "body": body, "more_body": False}
        if leave:
            await first_bytes.wait()
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # a client that stays to the end

    async def send(message):
        sent.append(message)
        if message.get("body"):
            first_bytes.set()

    scope = http_scope("POST", path, [(b"content-type", b"application/json"), *headers])

    async def run():
        await GatewayHandler()(scope, receive, send)
        await run_shutdown()  # the record stage; then the pools close, as a worker's would

    asyncio.run(run())
    start, *rest = sent
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in rest))


def routed_in_process(live, content: str, *, leave: bool = False, **body) -> tuple[int, dict[str, str], bytes]:
    """A routed call (model "auto") of `live`'s tenant run in this process, so that its
    circuit breakers can be read."""
    return through_handler("/v1/chat/completions", orjson.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": content}], **body}),
        [(b"authorization", f"Bearer {live.raw_key}".encode())], leave=leave)


def half_open(monkeypatch, settings, model_id: str) -> None:
    """Sets this process's circuits to one: `model_id`'s, half open (its cool-down over), its
    probe free for the next call."""
    settings.AKA_BREAKER_COOLDOWN = 60
    monkeypatch.setattr(breaker, "_circuits", {model_id: breaker.Circuit(failures=5, opened_at=time.monotonic() - 61)})
