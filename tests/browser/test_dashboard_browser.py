"""The dashboard's real flows in Chromium against the live gateway: sign up and see the
key once, call through the OpenAI SDK and watch the overview change, filter the call log
and open a call, open an invoice and download its CSV, revoke a key, change a threshold
as owner and fail to as a member, and tune a tenant as staff. Every page is checked with axe-core (no serious or critical
violations) and leaves a screenshot in test-artifacts/browser/."""

import csv
import io
import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from apps.billing import invoices
from apps.billing.models import CallRecord
from apps.cache.models import CacheEntry
from apps.cache.selectors import cache_settings_for
from apps.dashboard.rollups import rollups_refresh
from apps.providers.catalog import sync_from_seed
from apps.tenants.models import Tenant
from tests import factories
from tests.billing.helpers import ledger_rows
from tests.browser.test_signup_browser import CHROMIUM, assert_fully_loaded, page, sign_up, watch_loads  # noqa: F401
from tests.conftest import _wait_for_catalog
from tests.dashboard import ledger

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by scripts/bootstrap.sh")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
SIGNUP_PASSWORD = "a-long-browser-passphrase-3"
PASSWORD = factories.PASSWORD
_axe = Axe()  # axe-core from the package's own axe.min.js: nothing is downloaded


def check(tab, name: str) -> None:
    """No serious or critical axe-core violations on the page as it is now; a screenshot."""
    tab.wait_for_load_state()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    violations = _axe.run(tab).response["violations"]
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {bad}"


def log_in(tab, base: str, email: str, then: str = "/") -> None:
    tab.goto(f"{base}/accounts/login/?next={then}")
    tab.fill("input[name=username]", email)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("main button[type=submit]")
    tab.wait_for_url(f"{base}{then}")


def test_a_tenant_signs_up_calls_and_manages_its_dashboard(page, gateway, gateway_mail_dir):  # noqa: F811
    factories.ensure_plans()
    sync_from_seed()
    broken = watch_loads(page)
    sign_up(page, gateway, gateway_mail_dir, organisation="Browser Bank", email="eve@example.com", password=SIGNUP_PASSWORD,
            before=lambda form: check(form, "01-signup"))
    raw = page.get_by_test_id("raw-key").inner_text()
    assert re.fullmatch(r"aka_[\w-]{43}", raw)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_test_id("copy-key").click()
    expect(page.get_by_test_id("copy-key")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    check(page, "02-key-shown-once")
    tenant = Tenant.objects.get(name="Browser Bank")
    _wait_for_catalog(gateway, raw)

    page.goto(f"{gateway}/?period=today")
    assert_fully_loaded(page, broken)
    assert raw not in page.content()
    expect(page.get_by_test_id("calls")).to_have_text(re.compile(r"^0\b"))
    check(page, "03-overview-empty")

    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=raw)
    question = [{"role": "user", "content": "How do I activate my new card?"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=question)
    deadline = time.monotonic() + 10  # the answer is cached just after the response
    while not CacheEntry.objects.for_tenant(tenant).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    client.chat.completions.create(model="gpt-4o-mini", messages=question)  # a cache hit
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "What is my PIN?"}])
    # The page polls with htmx: the numbers change without a reload.
    expect(page.get_by_test_id("calls")).to_have_text(re.compile(r"^3\b"), timeout=30_000)
    expect(page.get_by_test_id("hit-rate")).to_contain_text("33.3%")
    check(page, "04-overview-after-calls")

    page.goto(f"{gateway}/calls/")
    expect(page.locator("#call-log tbody tr")).to_have_count(3)
    hit = CallRecord.objects.for_tenant(tenant).get(cache__in=["exact", "semantic"])
    page.select_option("select[name=cache]", hit.cache)
    page.click("text=Filter")
    expect(page.locator("#call-log tbody tr")).to_have_count(1)
    assert f"cache={hit.cache}" in page.url
    check(page, "05-calls-filtered")
    page.locator("#call-log tbody a").first.click()
    page.wait_for_url(f"{gateway}/calls/{hit.request_id}/")
    expect(page.locator("main")).to_contain_text("Prompt logging is off")
    check(page, "06-call-detail")

    page.goto(f"{gateway}/keys/")
    page.fill("#new-key-name", "temporary")
    page.click("text=Create key")
    second = page.get_by_test_id("raw-key").inner_text()
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm asks first
    row = page.locator("tr", has_text=second[:12])  # the name is in the rename box, the prefix is text
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("revoked")
    check(page, "07-keys-revoked")
    deadline = time.monotonic() + 5  # every process forgets the key within AKA_KEY_CACHE_TTL
    while (status := httpx.get(f"{gateway}/v1/models", headers={"authorization": f"Bearer {second}"}).status_code) \
            == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 401

    page.goto(f"{gateway}/settings/")
    page.fill("input[name=cache-threshold]", "0.95")
    page.click("text=Save semantic cache")
    expect(page.locator(".messages")).to_contain_text("threshold")
    assert cache_settings_for(tenant=tenant).threshold == 0.95
    expect(page.locator("main")).to_contain_text("eve@example.com")
    check(page, "08-settings-owner")
    assert_fully_loaded(page, broken)

    factories.add_member(tenant, "mia@example.com")
    page.click("text=Log out")
    page.wait_for_url(f"{gateway}/accounts/login/")
    log_in(page, gateway, "mia@example.com")
    assert page.locator("nav >> text=Settings").count() == 0
    denied = page.goto(f"{gateway}/settings/")
    assert denied.status == 403
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    denied = page.request.post(f"{gateway}/settings/cache/", form={"cache-threshold": "0.85"},
                               headers={"X-CSRFToken": csrf, "Referer": f"{gateway}/"})
    assert denied.status == 403
    assert cache_settings_for(tenant=tenant).threshold == 0.95


def test_staff_tune_a_tenants_cache_rule_with_a_preview(page, gateway):  # noqa: F811
    page.goto(f"{gateway}/accounts/login/")
    check(page, "09-login")
    tenant, _ = factories.make_tenant("Tuned Co")
    now = timezone.now()
    ledger.calls(tenant, n=300, start=now - timedelta(days=5), span=timedelta(days=4))
    rollups_refresh()
    get_user_model().objects.create_user("ops@akarouter.test", "ops@akarouter.test", PASSWORD, is_staff=True)
    broken = watch_loads(page)
    log_in(page, gateway, "ops@akarouter.test", then="/staff/")
    expect(page.locator("#tenants")).to_contain_text("tuned-co")
    page.get_by_role("link", name="Margin").click()  # sortable
    page.wait_for_url(re.compile(r"sort=-margin_usd"))
    check(page, "10-staff-console")
    page.locator("tr", has_text="tuned-co").get_by_role("link", name="Tune").click()
    expect(page.get_by_test_id("preview-hit-rate")).to_be_visible()   # loaded with the page
    expect(page.get_by_test_id("preview-hit-rate")).to_contain_text("at 0.85, 1.0% target")   # the current rule
    page.fill("#id_threshold", "0.93")
    expect(page.get_by_test_id("preview-hit-rate")).to_contain_text("at 0.93, 1.0% target", timeout=10_000)
    page.fill("#id_target_wrong_hit_rate", "0.5")
    expect(page.get_by_test_id("preview-hit-rate")).to_contain_text("at 0.93, 0.5% target", timeout=10_000)
    check(page, "11-staff-tune-preview")
    page.click("text=Apply rule")
    expect(page.get_by_test_id("current-threshold")).to_have_text("0.93")
    expect(page.get_by_test_id("current-target")).to_have_text("0.5% wrong hits allowed")
    expect(page.get_by_test_id("preview-hit-rate")).to_contain_text("at 0.93, 0.5% target")  # the new page's own preview
    settings = cache_settings_for(tenant=tenant)
    assert (settings.threshold, settings.target_wrong_hit_rate) == (0.93, 0.005)
    page.goto(f"{gateway}/staff/audit/")
    expect(page.locator("main")).to_contain_text("ops@akarouter.test")
    check(page, "12-staff-audit")
    assert_fully_loaded(page, broken)


def test_a_member_opens_an_invoice_and_downloads_its_csv(page, gateway):  # noqa: F811
    tenant, _ = factories.make_tenant("Invoiced Co", owner_email="ivy@example.com")
    last_month = invoices.Period.containing(timezone.now()).previous()
    # Rows as the gateway's writer makes them, collected by the meter outbox into last
    # month's draft, which is then closed as the month-end task does.
    ledger_rows(tenant, 64, price_cents=10, at=last_month.start + timedelta(days=3), cache="exact")
    ledger_rows(tenant, 3, billable=False, at=last_month.start + timedelta(days=3))
    invoice = invoices.period_close(tenant_id=tenant.pk, period=last_month)
    assert invoice.calls == 64
    broken = watch_loads(page)
    log_in(page, gateway, "ivy@example.com", then="/invoices/")
    expect(page.locator("#invoices")).to_contain_text(invoice.number)
    check(page, "30-invoices")
    page.get_by_role("link", name=f"{last_month.start:%B %Y}").click()
    page.wait_for_url(f"{gateway}/invoices/{invoice.pk}/")
    expect(page.get_by_test_id("invoice-calls")).to_have_text("64")
    expect(page.locator("#invoice-lines tbody tr")).to_have_count(51)  # 50 lines and "Load more"
    page.click("text=Load more lines")
    expect(page.locator("#invoice-lines tbody tr")).to_have_count(64)
    assert_fully_loaded(page, broken)
    check(page, "31-invoice")
    with page.expect_download() as download:
        page.get_by_test_id("invoice-csv").click()
    assert download.value.suggested_filename == f"{invoice.number}.csv"
    lines = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert lines[0] == invoices.CSV_HEADER
    assert len(lines) - 1 == invoice.calls == CallRecord.objects.for_tenant(tenant).filter(billable=True).count()


def test_the_overview_on_a_phone_in_dark_mode(page, gateway):  # noqa: F811
    tenant, owner = factories.make_tenant("Phone Co", owner_email="pat@example.com")
    ledger.calls(tenant, n=200, start=timezone.now() - timedelta(days=6), span=timedelta(days=6))
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(color_scheme="dark")
    log_in(page, gateway, "pat@example.com")
    expect(page.get_by_test_id("calls")).to_have_text(re.compile(r"^200\b"))
    # Nothing but wide tables scrolls sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    check(page, "20-overview-phone-dark")
    page.goto(f"{gateway}/calls/")
    check(page, "21-calls-phone-dark")


def test_a_person_in_two_tenants_switches_in_the_header(page, gateway):  # noqa: F811
    factories.make_tenant("First Co", owner_email="quinn@example.com")
    second, _ = factories.make_tenant("Second Co", owner_email="quinn@example.com")
    log_in(page, gateway, "quinn@example.com")
    expect(page.locator("main h1")).to_have_text("First Co")
    page.get_by_label("Acting for").select_option(label="Second Co")
    check(page, "40-tenant-picker")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(f"{gateway}/")
    expect(page.locator("main h1")).to_have_text("Second Co")
    expect(page.get_by_label("Acting for")).to_have_value(str(second.pk))
