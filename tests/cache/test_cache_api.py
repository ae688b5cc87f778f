"""Cache stats and purges through the management API, with the three-party fixture."""

from datetime import timedelta

import numpy as np
from django.utils import timezone
from rest_framework.test import APIClient

from apps.cache.models import CacheEntry
from tests import factories


def put_entry(tenant, prompt: str, *, key=None, expires_in=timedelta(days=1)) -> CacheEntry:
    """An entry written the way the store writes them (the table is unmanaged SQL)."""
    from django.db import connection

    vector = np.random.default_rng(abs(hash(prompt)) % 2**32).normal(size=384)
    vector /= np.linalg.norm(vector)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO cache_entry (tenant_id, context_key, exact_key, api_key_id, prompt_text, embedding, response,"
            " model, expires_at) VALUES (%s, 'ctx', md5(%s), %s, %s, %s::vector, '{}', 'gpt-4o-mini', %s) RETURNING id",
            [tenant.pk, f"{tenant.pk}{prompt}", key.pk if key else None, prompt, str(vector.tolist()),
             timezone.now() + expires_in])
        entry_id = cur.fetchone()[0]
    return CacheEntry.objects.for_tenant(tenant).get(id=entry_id)


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def remaining(tenant) -> list[str]:
    return sorted(CacheEntry.objects.for_tenant(tenant).values_list("prompt_text", flat=True))


def test_stats(party):
    put_entry(party.tenant, "card arrival")
    put_entry(party.tenant, "pin reset")
    put_entry(party.other_tenant, "theirs")
    stats = as_user(party.bob).get("/api/cache/").json()
    assert stats["entries"] == 2 and stats["hits"] == 0 and stats["size_bytes"] > 2 * 384 * 4


def test_purge_everything_of_the_tenant_only(party):
    put_entry(party.tenant, "card arrival")
    put_entry(party.other_tenant, "theirs")
    assert as_user(party.alice).delete("/api/cache/").json() == {"deleted": 1}
    assert remaining(party.tenant) == [] and remaining(party.other_tenant) == ["theirs"]


def test_purge_by_prompt_text_for_erasure(party):
    put_entry(party.tenant, "My name is Jane Roe and my card is blocked")
    put_entry(party.tenant, "card arrival")
    put_entry(party.other_tenant, "jane roe elsewhere")
    response = as_user(party.alice).delete("/api/cache/?prompt=jane roe")
    assert response.json() == {"deleted": 1}
    assert remaining(party.tenant) == ["card arrival"] and remaining(party.other_tenant) == ["jane roe elsewhere"]
    assert as_user(party.alice).delete("/api/cache/?prompt=a").status_code == 400


def test_purge_by_text_with_nul_is_a_json_400_that_deletes_nothing(party):
    put_entry(party.tenant, "card arrival")
    response = as_user(party.alice).delete("/api/cache/?prompt=a%00b")
    assert response.status_code == 400
    assert response.json() == {"prompt": "The text must not contain NUL characters."}
    assert remaining(party.tenant) == ["card arrival"]


def test_an_unexpected_failure_in_the_management_api_answers_json(party, monkeypatch):
    from apps.cache import api

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "cache_stats", broken)
    client = as_user(party.alice)
    client.raise_request_exception = False
    response = client.get("/api/cache/")
    assert response.status_code == 500
    assert response.json() == {"detail": "The server failed to process the request."}


def test_purge_by_api_key(party):
    key, _ = factories.make_key(party.tenant, "k1")
    put_entry(party.tenant, "from k1", key=key)
    put_entry(party.tenant, "from elsewhere")
    assert as_user(party.alice).delete(f"/api/cache/keys/{key.pk}/").json() == {"deleted": 1}
    assert remaining(party.tenant) == ["from elsewhere"]


def test_purge_one_entry(party):
    entry = put_entry(party.tenant, "one")
    put_entry(party.tenant, "two")
    assert as_user(party.alice).delete(f"/api/cache/entries/{entry.id}/").json() == {"deleted": 1}
    assert remaining(party.tenant) == ["two"]


def test_outsider_cannot_purge_or_see_another_tenants_cache(party):
    key, _ = factories.make_key(party.tenant, "k1")
    entry = put_entry(party.tenant, "secret", key=key)
    charlie = as_user(party.charlie)
    assert charlie.delete(f"/api/cache/entries/{entry.id}/").status_code == 404
    assert charlie.delete(f"/api/cache/keys/{key.pk}/").status_code == 404
    assert charlie.get("/api/cache/").json()["entries"] == 0
    charlie.delete("/api/cache/")
    charlie.delete("/api/cache/?prompt=secret")
    assert remaining(party.tenant) == ["secret"]


def test_member_cannot_purge(party):
    put_entry(party.tenant, "kept")
    assert as_user(party.bob).delete("/api/cache/").status_code == 403
    assert remaining(party.tenant) == ["kept"]


def test_expired_entries_are_purged(party):
    from apps.cache.purge import purge_expired

    put_entry(party.tenant, "old", expires_in=timedelta(seconds=-1))
    put_entry(party.other_tenant, "old too", expires_in=timedelta(seconds=-1))
    put_entry(party.tenant, "fresh")
    assert purge_expired() == 2
    assert remaining(party.tenant) == ["fresh"] and remaining(party.other_tenant) == []
