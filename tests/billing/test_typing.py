"""mypy --strict over the billing modules that talk to Stripe: every parameter we send is
checked against the SDK's TypedDicts and every attribute we read against its resources,
so a renamed or removed Stripe field fails here (the fake checks the same at run time)."""

import os
import subprocess

from tests.live import ROOT, _python

STRIPE_FACING = ["apps/billing/stripe_api.py", "apps/billing/stripe_fake.py", "apps/billing/outbox.py",
                 "apps/billing/accounts.py", "apps/billing/reconcile.py"]


def test_the_stripe_facing_modules_pass_mypy_strict():
    done = subprocess.run([_python(), "-m", "mypy", "--config-file", "apps/billing/mypy.ini", *STRIPE_FACING],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "DJANGO_DEBUG": "1"}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found in 5 source files" in done.stdout


def test_mypy_would_catch_a_wrong_parameter(tmp_path):
    """The check can fail: a misspelt meter event parameter is an error."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from stripe.params.billing import MeterEventCreateParams\n"
        "params: MeterEventCreateParams = {'event_name': 'x', 'payload': {}, 'identifer': 'typo'}\n")
    done = subprocess.run([_python(), "-m", "mypy", "--strict", "--follow-imports=silent", str(wrong)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "identifer" in done.stdout
