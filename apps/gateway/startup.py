"""Warm what the first call would otherwise pay for, once per worker process."""

from apps.core.lifecycle import on_startup
from apps.providers.catalog import amodels
from apps.providers.http import client


@on_startup
async def warm() -> None:
    await amodels()
    client()
