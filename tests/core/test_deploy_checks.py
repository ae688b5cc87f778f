"""Production settings pass Django's deployment checks, and the dashboard sends a
Content-Security-Policy (htmx keeps working under it: tests/browser/test_csp_browser.py)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k" * 20 + "production-like-secret-value-for-the-check-0123456789",
    "DJANGO_ALLOWED_HOSTS": "gateway.example.com",
    "DATABASE_URL": "postgresql://aka@db.example.com/aka",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def test_check_deploy_is_clean_with_production_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AKA_"))}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env={**env, **PRODUCTION_ENV}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_dashboard_pages_carry_a_content_security_policy(client, party):
    client.force_login(party.alice)
    policy = client.get("/keys/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline scripts, no eval
    assert directives["frame-ancestors"] == "'none'"


def test_htmx_is_told_not_to_inject_inline_styles(client, party):
    client.force_login(party.alice)
    assert '"includeIndicatorStyles":false' in client.get("/").content.decode().replace(" ", "")
