"""A purge, or the cache turned off, while a call is in flight: the call looked the cache up
before, and its answer, stored after, must not bring back what was purged (an erasure by
prompt above all) nor fill a cache the tenant turned off."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from apps.cache import purge, services, store
from apps.cache.models import CacheEntry, CacheSettings
from apps.core.llm import ChatResult, Usage
from tests import factories
from tests.cache.helpers import run, unit

PROMPT = "What is the address on file for Jane Roe?"
ANSWER = ChatResult(id="a", model="gpt-4o-mini", content="12 Elm Street", finish_reason="stop",
                    usage=Usage(12, 4), provider="openai")


async def plan(tenant_id: int) -> services.Plan:
    """A call's plan, with the generation of the tenant's settings at its lookup."""
    config = await services.snapshot(tenant_id)
    return services.Plan(tenant_id=tenant_id, api_key_id=None, scope="", context="ctx", exact="e" * 64, prompt=PROMPT,
                         threshold=0.85, target=None, ttl_seconds=3600, tool_calls=False, generation=config.generation)


async def planned(tenant_id: int) -> tuple[services.Plan, services.Miss]:
    """What a call does before it asks the provider: its plan and the lookup that missed."""
    looked_up = await plan(tenant_id)
    miss = await services.lookup(looked_up)
    assert isinstance(miss, services.Miss)
    return looked_up, miss


async def exact_hit(tenant_id: int) -> bool:
    return isinstance(await services.lookup(await plan(tenant_id)), services.Hit)


@pytest.mark.parametrize("purging", ["prompt", "tenant", "turned off"])
def test_a_call_in_flight_stores_nothing_after_a_purge_or_the_cache_turned_off(transactional_db, purging):
    tenant, _ = factories.make_tenant()

    async def scenario():
        plan, miss = await planned(tenant.pk)
        if purging == "prompt":
            await sync_to_async(purge.purge_prompt)(tenant=tenant, text="jane roe")
        elif purging == "tenant":
            await sync_to_async(purge.purge_tenant)(tenant=tenant)
        else:
            await sync_to_async(services.cache_settings_update)(tenant=tenant, changes={"enabled": False})
            await sync_to_async(services.cache_settings_update)(tenant=tenant, changes={"enabled": True})
        assert await services.remember(plan, miss, ANSWER) is None
        assert not await exact_hit(tenant.pk)
        # A call looked up after it stores as before.
        plan, miss = await planned(tenant.pk)
        assert await services.remember(plan, miss, ANSWER) is not None
        assert await exact_hit(tenant.pk)

    run(scenario())


def a_lock_is_awaited(timeout: float = 10.0) -> bool:
    """Whether a session waits on a lock, within `timeout` (the tests run one at a time: the
    one under test). Polled rather than slept on: a slow start of the waiting side cannot
    pass for its waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)")
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


def awaited_in_a_thread() -> bool:
    try:
        return a_lock_is_awaited()
    finally:
        connection.close()


@pytest.mark.parametrize("first", [False, True], ids=["settings row", "first purge"])
def test_a_write_during_a_purge_waits_for_it_and_then_stores_nothing(transactional_db, first):
    """`first`: the tenant never changed its settings and never stored an answer, so it has
    no settings row: its first purge creates it, and the write must wait on that too
    (before, it found no row to wait on and stored its answer after the purge)."""
    tenant, _ = factories.make_tenant()
    if not first:   # the tenant's settings row exists (its first change): a purge locks it
        services.cache_settings_update(tenant=tenant, changes={"ttl_seconds": 3600})
    assert CacheSettings.objects.for_tenant(tenant).exists() is not first
    locked, release = threading.Event(), threading.Event()

    def purge_slowly():
        try:
            with transaction.atomic():
                services.cache_settings_update(tenant=tenant, changes={}, new_generation=True)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    async def scenario():
        plan, miss = await planned(tenant.pk)
        purging = threading.Thread(target=purge_slowly)
        purging.start()
        try:
            assert await asyncio.to_thread(locked.wait, 10)
            write = asyncio.ensure_future(services.remember(plan, miss, ANSWER))
            assert await asyncio.to_thread(awaited_in_a_thread)   # the write waits on what the purge holds
            assert not write.done()
        finally:
            release.set()
        assert await write is None
        await asyncio.to_thread(purging.join)
        assert not await exact_hit(tenant.pk)

    run(scenario())


def test_a_first_purge_during_a_write_waits_for_it_and_then_deletes_what_it_wrote(transactional_db):
    """The other order: a write of a tenant with no settings row holds its transaction open
    (the generation lock shared, its entry inserted); the tenant's first purge waits for it,
    then deletes the entry. Before, the purge saw nothing to wait on, deleted before the
    entry was committed, and the entry stayed. The write is store.INSERT's lock and a plain
    insert held open; the gateway's own write is the parametrized test above."""
    tenant, _ = factories.make_tenant()
    written, release = threading.Event(), threading.Event()

    def write_slowly():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(store.WRITE_LOCK, {"tenant": tenant.pk})
                cursor.execute(
                    "INSERT INTO cache_entry (tenant_id, scope, context_key, exact_key, prompt_text, embedding, response,"
                    " model, expires_at) VALUES (%s, '', 'ctx', %s, %s, %s::vector, '{}', 'm', now() + interval '1 hour')",
                    [tenant.pk, "e" * 64, PROMPT, str(unit(0).tolist())])
                written.set()
                release.wait(10)
        finally:
            connection.close()

    def purge_first():
        try:
            purge.purge_prompt(tenant=tenant, text="jane roe")
        finally:
            connection.close()

    assert not CacheSettings.objects.for_tenant(tenant).exists()
    writing = threading.Thread(target=write_slowly)
    writing.start()
    purging = threading.Thread(target=purge_first)
    try:
        assert written.wait(10)
        purging.start()
        assert a_lock_is_awaited() and purging.is_alive()   # it waits for the write
    finally:
        release.set()
    writing.join(10)
    purging.join(10)
    assert not purging.is_alive()
    assert not CacheEntry.objects.for_tenant(tenant).exists()
