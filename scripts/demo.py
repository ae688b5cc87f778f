"""`make demo`: services up, schema migrated, demo tenant and key, sample workload.

Idempotent: a second run reuses the running services, the tenant and a still-valid key.
Writes `.local/demo.env` (AKA_BASE_URL, AKA_API_KEY, ...) for scripts and benchmarks.
"""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import services  # noqa: E402

DEMO_ENV = services.LOCAL / "demo.env"
PY = str(services.VENV_BIN / "python")


def read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PY, "manage.py", *args], cwd=services.ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def wait_for(url: str, process: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not services.alive(process):
            sys.exit(f"{process} exited; see .local/log/{process}.log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not answer within {seconds:.0f}s; see .local/log/")


def main() -> None:
    started = time.monotonic()
    # Billing talks to Stripe itself given a (test-mode) STRIPE_SECRET_KEY, else to the fake.
    if not os.environ.get("STRIPE_SECRET_KEY"):
        os.environ.setdefault("AKA_STRIPE_FAKE", "1")
    env = services.process_env()
    print(manage(env, "migrate", "--noinput").splitlines()[-1])
    # The step deploy/Dockerfile runs, so a static file that breaks it fails here first;
    # under DJANGO_DEBUG the server itself reads the apps' folders (akaplatform/asgi.py).
    manage(env, "collectstatic", "--noinput")
    previous = read_env(DEMO_ENV)
    password = previous.get("AKA_DEMO_PASSWORD") or "demo-" + os.urandom(6).hex()
    email, password, key = manage(
        env, "demo_setup", "--password", password, "--reuse-key", previous.get("AKA_API_KEY", "")
    ).split()
    print(manage(env, "stripe_setup").splitlines()[0])  # meter, product, prices: found or made

    services.start(list(services.APP_PROCESSES))
    base = env["AKA_BASE_URL"]
    wait_for(f"{base}/healthz", "web")

    wait_for(f"{env['AKA_SIMULATOR_URL']}/_sim/health", "simulator")
    DEMO_ENV.write_text(
        f"AKA_BASE_URL={base}\nAKA_API_KEY={key}\nAKA_DEMO_EMAIL={email}\nAKA_DEMO_PASSWORD={password}\n"
        f"AKA_SIMULATOR_URL={env['AKA_SIMULATOR_URL']}\n"
    )
    workload = subprocess.run([PY, "scripts/sample_workload.py"], cwd=services.ROOT, capture_output=True, text=True)
    if workload.returncode:
        sys.exit(f"sample workload failed:\n{workload.stdout}{workload.stderr}")
    print(workload.stdout.splitlines()[-1])
    # A month of history for three tenants (with its own progress bar), then fresh rollups,
    # so the dashboard has something to show the moment it opens.
    history = subprocess.run([PY, "manage.py", "demo_history", "--password", password], cwd=services.ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    if history.returncode:
        sys.exit("manage.py demo_history failed (see above)")
    print(history.stdout.rstrip().splitlines()[-1])
    print(f"""
AkaRouter is running ({time.monotonic() - started:.1f}s).
  Dashboard:  {base}/
  Login:      {email} / {password}
  Staff:      {base}/staff/ (staff@demo.akarouter.local / {password})
  API key:    {key}
  OpenAI SDK: OpenAI(base_url="{base}/v1", api_key="{key}")
  Saved to:   .local/demo.env      Stop with: make stop
""")


if __name__ == "__main__":
    main()
