"""The periodic expiry task, run by a real Celery worker through Redis."""

import subprocess
import time
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.conf import settings

from apps.cache.models import CacheEntry
from apps.cache.tasks import purge_expired
from tests import factories
from tests.cache.test_cache_api import put_entry
from tests.live import ROOT, _python


@pytest.fixture
def worker(transactional_db):
    """A Celery worker on its own queue, against the test database."""
    db = settings.DATABASES["default"]
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": f"postgresql://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}",
           "PYTHONPATH": str(ROOT)}
    import os

    proc = subprocess.Popen(
        [_python(), "-m", "celery", "-A", "akaplatform", "worker", "-Q", queue, "--pool", "solo", "--loglevel",
         "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield queue
    proc.terminate()
    proc.wait(timeout=10)


def test_worker_deletes_expired_entries(worker):
    tenant, _ = factories.make_tenant()
    put_entry(tenant, "expired", expires_in=timedelta(seconds=-5))
    put_entry(tenant, "fresh")
    result = purge_expired.apply_async(queue=worker)
    deadline = time.monotonic() + 30
    while CacheEntry.objects.for_tenant(tenant).count() != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(CacheEntry.objects.for_tenant(tenant).values_list("prompt_text", flat=True)) == ["fresh"]
    assert result.id
