"""make manage: a manage.py command run with the environment scripts/services.py provides."""

import os
import subprocess

from tests.live import ROOT

# What scripts/services.py provides; a user's shell has none of it.
SERVICES_ENV = {"DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}


def test_make_manage_runs_a_command_against_the_dev_database():
    env = {name: value for name, value in os.environ.items() if name not in SERVICES_ENV}

    # `check --database default` loads the settings (which fail without the secret) and
    # connects to the database, but reads no table, so it needs no migrated schema.
    done = subprocess.run(["make", "manage", "ARGS=check --database default"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout
