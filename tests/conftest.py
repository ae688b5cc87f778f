"""Live servers for the integration tests: the upstream simulator, and the gateway
(uvicorn serving the real ASGI app) in front of it, sharing the test database and the
test Redis database."""

import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings

from apps.billing.models import CallRecord
from apps.providers.catalog import sync_from_seed
from tests import factories
from tests.live import start_gateway, start_simulator


@pytest.fixture(scope="session")
def test_database_url(django_db_setup) -> str:
    """The migrated test database, for processes a test starts (its own database is not
    migrated on a fresh machine)."""
    db = settings.DATABASES["default"]  # by now pytest-django has pointed it at the test database
    return f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}"


@pytest.fixture(scope="session")
def gateway_mail_dir(tmp_path_factory) -> Path:
    """Where the live gateway writes its emails (sign-up links), one file per message:
    under pytest's own temporary root, which it prunes, so runs leave nothing behind."""
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="session")
def gateway(test_database_url, django_db_blocker, simulator, gateway_mail_dir):
    url, stop = start_gateway(
        database_url=test_database_url,
        redis_url=settings.REDIS_URL,
        simulator_url=simulator,
        extra_env={
            "AKA_UPSTREAM_READ_TIMEOUT": "1.5",
            "AKA_RETRY_BASE_DELAY": "0.01",
            "AKA_MAX_RETRY_AFTER": "0.05",
            "AKA_KEY_CACHE_TTL": "0.5",
            "AKA_CATALOG_TTL": "0.05",
            "AKA_MAX_BODY_BYTES": str(256 * 1024),
            # Fault tests open circuits; later tests must not inherit them for long.
            "AKA_BREAKER_COOLDOWN": "0.5",
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(gateway_mail_dir),
        },
    )
    yield url
    stop()


@pytest.fixture
def live(transactional_db, gateway):
    """A tenant with a key, the catalog in place, and the gateway's base URL."""
    sync_from_seed()
    tenant, owner = factories.make_tenant("Live Tenant")
    key, raw = factories.make_key(tenant, "live")
    probe, _ = factories.make_tenant("Catalog probe")  # keeps the live tenant's key and counters untouched
    _wait_for_catalog(gateway, factories.make_key(probe)[1])
    yield Live(url=gateway, tenant=tenant, key=key, raw_key=raw, owner=owner)
    _wait_until_the_gateway_is_quiet()


def _wait_until_the_gateway_is_quiet() -> None:
    """The gateway writes ledger rows and cache entries just after each response; let
    them land before the test database is emptied for the next test."""
    from django.db import connection

    quiet_since, deadline = None, time.monotonic() + 5
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND pid <> pg_backend_pid() AND state <> 'idle'")
            busy = cursor.fetchone()[0]
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.15:
            return
        time.sleep(0.03)


def _wait_for_catalog(url: str, key: str) -> None:
    # Transactional tests empty every table between tests; the server reloads its
    # catalog snapshot every AKA_CATALOG_TTL, so wait until it has the seeded one again.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listed = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {key}"}).json()
        if len(listed.get("data", [])) > 1:
            return
        time.sleep(0.02)
    raise AssertionError("the gateway never saw the seeded catalog")


class Live:
    def __init__(self, url, tenant, key, raw_key, owner):
        self.url, self.tenant, self.key, self.raw_key, self.owner = url, tenant, key, raw_key, owner

    def records(self, expected: int = 1, timeout: float = 3.0) -> list[CallRecord]:
        """The tenant's ledger rows, waiting for `expected` of them (streams are recorded
        when they end, a moment after the client has read the last byte)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = list(CallRecord.objects.for_tenant(self.tenant).order_by("created_at", "id"))
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


@pytest.fixture(scope="session")
def simulator():
    url, stop = start_simulator(fast=True)
    yield url
    stop()


@pytest.fixture
def sim(simulator):
    """The session simulator with zeroed stats, faults and marker counters."""
    assert httpx.post(f"{simulator}/_sim/reset").status_code == 200
    return simulator
