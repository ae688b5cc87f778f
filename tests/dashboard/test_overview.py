"""The overview's numbers against the ledger, computed independently, for rows in the
rollups, rows in the ledger's tail, and both."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.billing.models import CallRecord
from apps.dashboard.rollups import hour_floor, rollups_refresh
from apps.dashboard.selectors import CUSTOM_DAYS, overview, period_of
from tests.dashboard import ledger

pytestmark = pytest.mark.django_db


def from_ledger(tenant, start, end) -> dict:
    rows = CallRecord.objects.for_tenant(tenant).filter(created_at__gte=start, created_at__lt=end)
    got = rows.aggregate(
        calls=Count("id"), errors=Count("id", filter=Q(status_code__gte=400)),
        billable=Count("id", filter=Q(billable=True)),
        lookups=Count("id", filter=Q(cache__in=["miss", "exact", "semantic"])),
        exact=Count("id", filter=Q(cache="exact")), semantic=Count("id", filter=Q(cache="semantic")),
        speculated=Count("id", filter=~Q(speculation_outcome="")),
        accepted=Count("id", filter=Q(speculation_outcome="accepted")),
        provider=Sum("provider_cost_micros"), counterfactual=Sum("counterfactual_cost_micros"), price=Sum("price_cents"))
    latencies = sorted(rows.values_list("latency_ms", flat=True))
    got["p50"] = latencies[len(latencies) // 2] if latencies else None
    got["p95"] = latencies[int(len(latencies) * 0.95)] if latencies else None
    return got


def assert_equal_to_ledger(o, tenant, period):
    expected = from_ledger(tenant, period.start, period.end)
    assert o.calls == expected["calls"] > 0
    assert (o.errors, o.billable, o.lookups) == (expected["errors"], expected["billable"], expected["lookups"])
    assert (o.exact, o.semantic) == (expected["exact"], expected["semantic"])
    assert (o.speculated, o.accepted) == (expected["speculated"], expected["accepted"])
    assert o.provider_usd == expected["provider"] / Decimal(1_000_000)
    assert o.counterfactual_usd == expected["counterfactual"] / Decimal(1_000_000)
    assert o.paid_usd == Decimal(expected["price"]) / 100
    assert sum(n for _, n, _ in o.models) == o.calls
    assert sum(p.calls for p in o.series) == o.calls
    # Percentiles come from 10%-wide histogram buckets.
    assert o.p50_ms == pytest.approx(expected["p50"], rel=0.12)
    assert o.p95_ms == pytest.approx(expected["p95"], rel=0.12)


@pytest.mark.parametrize("rolled", ["none", "half", "all"])
def test_overview_equals_the_ledger(party, rolled):
    now = timezone.now()
    ledger.calls(party.tenant, n=600, start=hour_floor(now) - timedelta(days=6, hours=20), span=timedelta(days=6, hours=20))
    ledger.calls(party.other_tenant, n=200, start=now - timedelta(days=3), span=timedelta(days=2), seed=2)
    if rolled == "half":
        rollups_refresh(now=now - timedelta(days=3))
    elif rolled == "all":
        rollups_refresh(now=now + timedelta(hours=1))
    period = period_of(key="7d", now=now)
    assert_equal_to_ledger(overview(tenant=party.tenant, period=period), party.tenant, period)


def test_custom_period_counts_only_its_days(party):
    now = timezone.now()
    ledger.calls(party.tenant, n=300, start=now - timedelta(days=20), span=timedelta(days=19))
    rollups_refresh(now=now)
    period = period_of(key="custom", start=(now - timedelta(days=10)).date(), end=(now - timedelta(days=5)).date(),
                       now=now)
    o = overview(tenant=party.tenant, period=period)
    assert_equal_to_ledger(o, party.tenant, period)
    assert o.calls < 300


def test_a_custom_period_ends_today_and_spans_a_year_at_most(party):
    now = timezone.now()
    period = period_of(key="custom", start=date(1, 1, 1), end=date(9999, 12, 31), now=now)
    assert period.end == now and period.start.date() == now.date() - timedelta(days=CUSTOM_DAYS - 1)
    assert len(overview(tenant=party.tenant, period=period).series) == CUSTOM_DAYS
    assert period_of(key="custom", start=date(1, 1, 1), end=date(1, 1, 2), now=now).start.date() == date(1, 1, 1)


def test_the_overview_page_refreshes_its_numbers_with_htmx(client, party):
    ledger.calls(party.tenant, n=5, start=timezone.now() - timedelta(minutes=30), span=timedelta(minutes=10))
    client.force_login(party.bob)
    page = client.get("/?period=7d").content.decode()
    assert 'hx-trigger="every 5s"' in page and 'data-testid="calls">5<' in page
    ledger.calls(party.tenant, n=2, start=timezone.now() - timedelta(minutes=1), span=timedelta(seconds=10), seed=3)
    fragment = client.get("/?period=7d", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="numbers").content.decode()
    assert "<html" not in fragment and 'data-testid="calls">7<' in fragment
