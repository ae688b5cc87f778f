"""Warm what the first call would otherwise pay for, once per worker process."""

import asyncio

from apps.cache.embedder import embedder
from apps.core import pg
from apps.core.lifecycle import on_startup
from apps.providers.catalog import amodels
from apps.providers.http import client


@on_startup
async def warm() -> None:
    await amodels()
    client()
    await pg.pool()
    # Loading (and, the first time on a machine, exporting) the embedding model.
    model = await asyncio.get_running_loop().run_in_executor(None, embedder)
    await asyncio.get_running_loop().run_in_executor(None, model.embed, ["warm-up"])
