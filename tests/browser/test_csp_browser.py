"""The dashboard under its Content-Security-Policy in a real Chromium: htmx loads and
swaps, and the browser reports no violation."""

import shutil

import pytest

from tests import factories
from tests.browser.test_signup_browser import assert_fully_loaded, page, watch_loads  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")


def test_the_keys_page_works_under_its_csp(page, gateway):  # noqa: F811
    factories.make_tenant("Csp Corp", owner_email="csp@example.com")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    broken = watch_loads(page)
    page.goto(f"{gateway}/accounts/login/")
    page.fill("input[name=username]", "csp@example.com")
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{gateway}/")
    response = page.goto(f"{gateway}/keys/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert_fully_loaded(page, broken)
    page.fill("input[name=name]", "under csp")
    page.click("text=Create key")  # an htmx swap
    page.get_by_test_id("raw-key").wait_for()
    assert violations == []
