import asyncio
import threading

from apps.core.snapshots import Snapshots


class SlowLoad:
    """A load that blocks until released, counting its calls (the sync_to_async thread runs it)."""

    def __init__(self):
        self.calls, self.release, self.value = 0, threading.Event(), "v1"

    def __call__(self, key):
        self.calls, read = self.calls + 1, f"{key}:{self.value}"
        self.release.wait(5)
        return read


def test_calls_that_find_an_entry_stale_together_share_one_load():
    load = SlowLoad()
    snapshots = Snapshots(load, lambda: 60)

    async def scenario():
        waiters = [asyncio.ensure_future(snapshots.aget("k")) for _ in range(32)]
        await asyncio.sleep(0.05)
        load.release.set()
        return await asyncio.gather(*waiters), await snapshots.aget("k")

    answers, later = asyncio.run(scenario())
    assert answers == ["k:v1"] * 32 and later == "k:v1"
    assert load.calls == 1


def test_a_cancelled_caller_does_not_cancel_the_load_others_wait_for():
    load = SlowLoad()
    snapshots = Snapshots(load, lambda: 60)

    async def scenario():
        first, second = asyncio.ensure_future(snapshots.aget("k")), asyncio.ensure_future(snapshots.aget("k"))
        await asyncio.sleep(0.05)
        first.cancel()
        load.release.set()
        return await second

    assert asyncio.run(scenario()) == "k:v1"
    assert load.calls == 1


def test_a_value_loaded_across_a_forget_is_served_once_but_not_kept():
    load = SlowLoad()
    snapshots = Snapshots(load, lambda: 60)

    async def scenario():
        before = asyncio.ensure_future(snapshots.aget("k"))
        await asyncio.sleep(0.05)
        snapshots.forget("k")  # the row changed while it was being read
        load.value = "v2"
        load.release.set()
        return await before, await snapshots.aget("k")

    assert asyncio.run(scenario()) == ("k:v1", "k:v2")
    assert load.calls == 2



def test_peek_never_waits_and_serves_the_stale_value_while_one_reload_runs():
    load = SlowLoad()
    snapshots = Snapshots(load, lambda: 0.2)

    async def scenario():
        missing = [snapshots.peek("k") for _ in range(5)]     # the first load starts; nobody waits for it
        load.release.set()
        await asyncio.sleep(0.1)
        loaded = snapshots.peek("k")
        await asyncio.sleep(0.2)                             # stale now
        load.release.clear()
        load.value = "v2"
        stale = [snapshots.peek("k") for _ in range(5)]
        load.release.set()
        await asyncio.sleep(0.1)
        return missing, loaded, stale, snapshots.peek("k")

    missing, loaded, stale, reloaded = asyncio.run(scenario())
    assert (missing, loaded, stale, reloaded) == ([None] * 5, "k:v1", ["k:v1"] * 5, "k:v2")
    assert load.calls == 2
