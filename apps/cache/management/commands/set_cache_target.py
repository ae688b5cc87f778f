from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from apps.core.percent import from_percent

from ..settings_change import change_settings


def _rate(text: str) -> float | None:
    """'1%' or '0.01' -> 0.01; 'off' -> None (the similarity threshold alone)."""
    if text.lower() == "off":
        return None
    try:
        return from_percent(text[:-1] if text.endswith("%") else Decimal(text) * 100)
    except (ValueError, InvalidOperation):
        raise CommandError(f"not a rate: {text!r} (give e.g. 1% or 0.01, or off)") from None


class Command(BaseCommand):
    help = ("Set the share of a tenant's semantic cache hits allowed to be wrong (e.g. 0.5%, 1%, 2%; lower is "
            "stricter), or 'off' to serve on the similarity threshold alone (set_cache_threshold).")

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("target", type=_rate, help="e.g. 1%% or 0.01, or off")

    def handle(self, *args, **opts):
        tenant, changed = change_settings(opts["tenant"], {"target_wrong_hit_rate": opts["target"]})
        target = changed.target_wrong_hit_rate
        self.stdout.write(f"{tenant.slug} cache target wrong-hit rate {'off' if target is None else f'{target:.2%}'}")
