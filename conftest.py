"""Fixtures shared by every test module.

The tests run against the real PostgreSQL (pgvector) and Redis that `make test` starts;
Redis uses its own logical database so a running demo is never disturbed.
"""

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from apps.core.redis import sync_client
from tests import factories

# Overridable so two test runs on one machine (say, a second checkout) keep apart; their
# databases are kept apart by DATABASE_URL's name, which pytest-django prefixes with test_.
TEST_REDIS_DB = int(os.environ.get("AKA_TEST_REDIS_DB", "9"))


def _with_db(url: str, db: int) -> str:
    if url.startswith("unix://"):
        return f"{url.split('?')[0]}?db={db}"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session", autouse=True)
def _test_redis():
    settings.REDIS_URL = _with_db(settings.REDIS_URL, TEST_REDIS_DB)
    sync_client.cache_clear()
    sync_client().flushdb()
    yield


@pytest.fixture(scope="session", autouse=True)
def _test_spool(tmp_path_factory):
    """Calls run in this process journal and spool their ledger rows in a directory of the
    run's own. The default is named after the dev database (settings are read before
    pytest-django renames it), so in-process tests left journal files there, which the
    next `make demo` adopted as a dead process's and replayed into the dev database."""
    settings.AKA_LEDGER_SPOOL_DIR = tmp_path_factory.mktemp("ledger-spool")
    yield


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    from apps.tenants.keyauth import forget_cached_keys

    forget_cached_keys()
    yield
    forget_cached_keys()


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Account-page throttles count per client across requests; each test starts at zero."""
    from apps.tenants import signups, throttle

    client = sync_client()
    for prefix in (throttle.PREFIX, signups.PREFIX):
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@dataclass
class Party:
    """Two members of one tenant (alice owns it, bob is a member) and an outsider."""

    tenant: object
    alice: object
    bob: object
    other_tenant: object
    charlie: object


@pytest.fixture
def party(db) -> Party:
    tenant, alice = factories.make_tenant("Alpha Corp", owner_email="alice@example.com")
    bob = factories.add_member(tenant, "bob@example.com")
    other, charlie = factories.make_tenant("Other Inc", owner_email="charlie@example.com")
    return Party(tenant=tenant, alice=alice, bob=bob, other_tenant=other, charlie=charlie)
