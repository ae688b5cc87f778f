"""The gateway's ASGI handler driven in this process, without a server: for tests that
patch or count what runs inside a call."""

import asyncio

from apps.core.lifecycle import run_shutdown
from apps.gateway.handler import GatewayHandler
from tests.asgi import http_scope


def through_handler(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one call, once its record stage has run."""
    sent, given = [], []

    async def receive():
        if not given:
            given.append(body)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a client that stays to the end

    async def send(message):
        sent.append(message)

    scope = http_scope("POST", path, [(b"content-type", b"application/json"), *headers])

    async def run():
        await GatewayHandler()(scope, receive, send)
        await run_shutdown()  # the record stage; then the pools close, as a worker's would

    asyncio.run(run())
    start, *rest = sent
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in rest))
