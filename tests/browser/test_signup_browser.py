"""Sign-up, the one-time key, the keys page and login again, in a real Chromium."""

import re
import shutil
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import sync_playwright

from apps.tenants.models import ApiKey, Tenant
from tests import factories

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by scripts/bootstrap.sh")


@pytest.fixture
def page(transactional_db, monkeypatch):
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls
    # are plain synchronous ones all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        yield browser.new_page()
        browser.close()
        # ORM calls made while Playwright's loop ran have connections of their own; left
        # open, they would keep the test database from being dropped at the end.
        connections.close_all()


def watch_loads(page) -> list[str]:
    """Every request of the page that failed or answered >= 400: a missing stylesheet or
    script leaves the page unstyled or htmx dead while its text still reads right."""
    broken: list[str] = []

    def on_response(response) -> None:
        if response.status >= 400:
            broken.append(f"{response.status} {response.url}")

    page.on("response", on_response)
    page.on("requestfailed", lambda request: broken.append(f"{request.failure} {request.url}"))
    return broken


def assert_fully_loaded(page, broken: list[str]) -> None:
    assert broken == []
    assert page.evaluate("typeof window.htmx") == "object"


def sign_up(page, gateway: str, mail_dir: Path, *, organisation: str, email: str, password: str,
            before=None) -> None:
    """Fills in the sign-up form and follows the link mailed to `email` (the newest one in
    the gateway's `mail_dir`: earlier tests mail the same address), up to the page that
    shows the key once.
    `before(page)` runs on the form page, for checks of it."""
    page.goto(f"{gateway}/accounts/signup/")
    if before:
        before(page)
    page.fill("input[name=organisation]", organisation)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.get_by_text("Check your email").wait_for()
    mails = sorted(mail_dir.iterdir(), key=lambda path: path.stat().st_mtime, reverse=True)
    mail = next(text for text in (path.read_text() for path in mails) if f"To: {email}" in text)
    page.goto(re.search(r"http://\S+/accounts/signup/confirm/\S+/", mail).group(0))
    page.click("text=Create my account")


def test_signup_shows_the_key_once_and_the_owner_can_log_in_again(page, gateway, gateway_mail_dir):
    factories.ensure_plans()
    broken = watch_loads(page)
    sign_up(page, gateway, gateway_mail_dir, organisation="Browser Bank", email="eve@example.com",
            password="a-long-browser-passphrase-3")
    raw = page.get_by_test_id("raw-key").inner_text()
    # Each page finishes loading before the next is opened, which would cancel its
    # stylesheet and scripts (and count them as failed).
    page.wait_for_load_state()
    assert re.fullmatch(r"aka_[\w-]{43}", raw)
    tenant = Tenant.objects.get(name="Browser Bank")
    assert ApiKey.objects.for_tenant(tenant).get().prefix == raw[:12]

    page.goto(f"{gateway}/keys/")
    assert_fully_loaded(page, broken)
    assert raw[:12] in page.content() and raw not in page.content()
    page.fill("input[name=name]", "second key")
    page.click("text=Create key")  # htmx swaps in the panel with the new key
    page.get_by_test_id("raw-key").wait_for()
    assert ApiKey.objects.for_tenant(tenant).count() == 2

    page.click("text=Log out")
    page.wait_for_url(f"{gateway}/accounts/login/")
    page.fill("input[name=username]", "eve@example.com")
    page.fill("input[name=password]", "a-long-browser-passphrase-3")
    page.click("button[type=submit]")
    page.wait_for_url(f"{gateway}/")
    assert "Browser Bank" in page.content()
    assert_fully_loaded(page, broken)
