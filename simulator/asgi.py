"""Raw ASGI plumbing: reading bodies, sending responses, paced streams, and the two ways
of dropping a connection.

Dropping a connection: an ASGI app cannot close its connection; raising an exception makes
uvicorn answer 500. So the simulator reaches the transport of the connection through the
`send` callable (uvicorn's `send` is a bound method of its RequestResponseCycle, which holds
`transport`), and
  * reset: sets SO_LINGER {on, 0} on the socket and aborts the transport, so the kernel sends
    a TCP RST and no byte of a response; the client sees a connection reset
    (httpx.ReadError / RemoteProtocolError "Server disconnected without sending a response");
  * cut: closes the transport after part of the response; the client sees an incomplete
    body (httpx.RemoteProtocolError "peer closed connection without sending complete message
    body"). Then the app waits for uvicorn's connection_lost so uvicorn marks the cycle
    disconnected and does not append a 500 of its own.
With a server whose `send` does not expose the transport the simulator falls back to raising
ConnectionResetError (uvicorn then sends a 500 or closes a started response).
"""

from __future__ import annotations

import asyncio
import socket
import struct

import orjson

JSON = b"application/json"
_LINGER_RST = struct.pack("ii", 1, 0)


async def read_body(receive) -> bytes | None:
    """The request body, or None when the client went away first."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_bytes(send, status: int, body: bytes, content_type: bytes = JSON, headers=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _cycle_and_transport(send):
    cycle = getattr(send, "__self__", None)
    return cycle, getattr(cycle, "transport", None)


async def _settle(cycle) -> None:
    for _ in range(50):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0)


async def reset_connection(send) -> None:
    """Reset the TCP connection without sending anything."""
    cycle, transport = _cycle_and_transport(send)
    if transport is None:
        raise ConnectionResetError("simulated connection reset")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
    transport.abort()
    await _settle(cycle)


async def cut_connection(send) -> None:
    """Close the connection in the middle of a response (what was sent is flushed first)."""
    cycle, transport = _cycle_and_transport(send)
    if transport is None:
        raise ConnectionAbortedError("simulated cut")
    transport.close()
    await _settle(cycle)


async def wait_disconnect(receive, seconds: float) -> bool:
    """Wait up to `seconds`; True when the client went away meanwhile."""
    watcher = asyncio.ensure_future(receive())
    try:
        done, _ = await asyncio.wait({watcher}, timeout=seconds)
        return bool(done) and watcher.result().get("type") == "http.disconnect"
    finally:
        if not watcher.done():
            watcher.cancel()


async def respond(
    send, status: int, body: bytes, *, delay: float = 0.0, cut: bool = False, content_type: bytes = JSON, headers=()
) -> None:
    if delay > 0:
        await asyncio.sleep(delay)
    if not cut:
        await send_bytes(send, status, body, content_type, headers)
        return
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body[: max(1, len(body) // 3)], "more_body": True})
    await cut_connection(send)


async def stream(
    send, receive, events: list[tuple[bytes, int]], *, ttft: float, tps: float, cut: bool, content_type: bytes, headers=()
) -> str:
    """Send `events` ((bytes, tokens) pairs) as a chunked body: the headers after `ttft`
    seconds, then token k at ttft + k/tps. Returns "completed", "cancelled" (the client went
    away) or "cut"."""
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache"), *headers],
    }
    if ttft <= 0 and tps <= 0 and not cut:
        await send(start)
        await send({"type": "http.response.body", "body": b"".join(data for data, _ in events)})
        return "completed"

    loop = asyncio.get_running_loop()
    watcher = asyncio.ensure_future(receive())
    try:
        if ttft > 0:
            await asyncio.wait({watcher}, timeout=ttft)
        if watcher.done():
            return "cancelled"
        await send(start)
        t0 = loop.time()
        total = sum(n for _, n in events)
        cut_at = max(1, total // 3) if cut else -1
        sent = 0
        for data, ntok in events:
            if ntok and tps > 0 and sent:
                delay = t0 + sent / tps - loop.time()
                if delay > 0:
                    await asyncio.wait({watcher}, timeout=delay)
            if watcher.done():
                return "cancelled"
            await send({"type": "http.response.body", "body": data, "more_body": True})
            sent += ntok
            if cut and sent >= cut_at:
                await cut_connection(send)
                return "cut"
        if watcher.done():
            return "cancelled"
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "completed"
    finally:
        if not watcher.done():
            watcher.cancel()


async def read_json_object(receive, send) -> dict | None:
    """A side endpoint's JSON object body; None when the client left or (after a 400) when
    the body was not one."""
    body = await read_body(receive)
    if body is None:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        await send_bytes(send, 400, b'{"error":"expected a JSON object"}')
        return None
    return data
