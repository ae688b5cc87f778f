"""Process start-up and shut-down hooks for the ASGI server.

Apps register coroutines (warm the embedder, open the shared HTTP client, flush
buffers); the ASGI lifespan protocol runs them once per worker process.
"""

from collections.abc import Awaitable, Callable

Hook = Callable[[], Awaitable[None]]
_startup: list[Hook] = []
_shutdown: list[Hook] = []


def on_startup(hook: Hook) -> Hook:
    _startup.append(hook)
    return hook


def on_shutdown(hook: Hook) -> Hook:
    _shutdown.append(hook)
    return hook


async def run_startup() -> None:
    for hook in _startup:
        await hook()


async def run_shutdown() -> None:
    for hook in reversed(_shutdown):
        await hook()


async def lifespan(receive, send) -> None:
    """The ASGI lifespan protocol, delegating to the registered hooks."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await run_startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                raise
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await run_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
