from akaplatform.celery import app

from . import purge


@app.task(name="cache.purge_expired")
def purge_expired() -> int:
    """Deletes expired entries; safe to run twice or concurrently."""
    return purge.purge_expired()
