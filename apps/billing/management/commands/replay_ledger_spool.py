import asyncio

from django.core.management.base import BaseCommand

from apps.billing import ledger, spool
from apps.core import pg


class Command(BaseCommand):
    help = "Replay spooled ledger rows into the database (the gateway does this by itself for pending rows)."

    def add_arguments(self, parser):
        parser.add_argument("--rejected", action="store_true",
                            help="retry rows the database refused, once their cause is fixed")

    def handle(self, *args, rejected=False, **opts):
        kind = spool.REJECTED if rejected else spool.PENDING
        async def run() -> int:
            try:
                return await ledger.replay(kind)
            finally:
                await pg.close_pools()

        left = asyncio.run(run())
        self.stdout.write(f"{kind}: {left} file(s) left in {spool.folder(kind)}")
        if left:
            raise SystemExit(1)
