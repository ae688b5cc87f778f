from celery import shared_task

from . import purge


@shared_task(name="cache.purge_expired")
def purge_expired() -> int:
    """Deletes expired entries; safe to run twice or concurrently."""
    return purge.purge_expired()
