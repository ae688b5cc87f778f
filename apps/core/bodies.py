"""A deadline on reading a request body. Neither ASGI server bounds how long a client may
take to send the body it announced, so a client could hold a connection (and a request
task) open for ever with `content-length: 100` and ten bytes. `bounded_receive` wraps the
ASGI `receive` so the body must arrive within AKA_BODY_READ_TIMEOUT seconds of the first
read; later reads (a streaming response waiting for a disconnect) are not bounded.
"""

import asyncio
import json

from django.conf import settings


class BodyReadTimeout(Exception):
    pass


def bounded_receive(receive):
    deadline: float | None = None
    complete = False

    async def bounded():
        nonlocal deadline, complete
        if complete:
            return await receive()
        loop = asyncio.get_running_loop()
        deadline = deadline or loop.time() + settings.AKA_BODY_READ_TIMEOUT
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyReadTimeout from None
        complete = message["type"] != "http.request" or not message.get("more_body")
        return message

    return bounded


MESSAGE = "The request body did not arrive in time."


async def send_timeout(send) -> None:
    """A 408 that closes the connection (its unread body would be taken for the next request)."""
    body = json.dumps({"error": {"message": MESSAGE, "type": "invalid_request_error", "code": "body_timeout"}})
    await send({"type": "http.response.start", "status": 408, "headers": [
        (b"content-type", b"application/json"), (b"connection", b"close"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body.encode()})
