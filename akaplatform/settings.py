"""One settings module for every environment, driven by environment variables.

Defaults are the safe production ones; `DJANGO_DEBUG=1` (set by the project's scripts)
turns on development conveniences. A value production cannot run without raises
`ImproperlyConfigured` naming it.
"""

import os
from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DJANGO_DEBUG")


def required(name: str, dev_default: str) -> str:
    """A value production must set explicitly; development gets `dev_default`."""
    value = os.environ.get(name)
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DJANGO_DEBUG is off")


SECRET_KEY = required("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_htmx",
    "template_partials",
    "apps.core",
    "apps.tenants",
    "apps.providers",
    "apps.billing",
    "apps.cache",
    "apps.routing",
    "apps.audit",
    "apps.gateway",
    "apps.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "akaplatform.urls"
ASGI_APPLICATION = "akaplatform.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Under ASGI, connections come from psycopg's pool; Django must not keep its own.
DATABASES = {
    "default": dj_database_url.parse(
        required("DATABASE_URL", "postgresql://postgres@" + quote(str(BASE_DIR / ".local" / "pgdata"), safe="") + "/akaplatform"),
        conn_max_age=0,
    )
}
DATABASES["default"]["OPTIONS"] = {
    "pool": {"min_size": envint("DB_POOL_MIN", 2), "max_size": envint("DB_POOL_MAX", 20), "timeout": 10},
}
# With the pool, each connection is checked as it leaves it (one round trip): after a
# PostgreSQL restart the pool otherwise handed its broken connections out one by one,
# each failing a request (bench/faults).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = required("REDIS_URL", "unix://" + str(BASE_DIR / ".local" / "redis.sock"))


def celery_url(redis_url: str) -> str:
    # kombu spells a unix socket "redis+socket://"; redis-py spells it "unix://".
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


CELERY_BROKER_URL = celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER")
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "cache-purge-expired": {"task": "cache.purge_expired", "schedule": envint("AKA_CACHE_PURGE_EVERY", 600)},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "AkaRouter <no-reply@akarouter.local>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.tenants.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.tenants.api_auth.IsTenantMember"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "apps.core.drf.json_exception_handler",
}

# --- AkaRouter ---------------------------------------------------------------------------
# Seconds a resolved API key stays cached in a process; revocation takes at most this long.
AKA_KEY_CACHE_TTL = float(os.environ.get("AKA_KEY_CACHE_TTL", "2"))
AKA_MAX_BODY_BYTES = envint("AKA_MAX_BODY_BYTES", 4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = AKA_MAX_BODY_BYTES

STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")

# Provider credentials and base URLs: environment only, never the database.
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL", "")
GEMINI_API_KEY = os.environ.get("GEMINI_API_KEY", "")
GEMINI_BASE_URL = os.environ.get("GEMINI_BASE_URL", "")
LOCAL_LLM_BASE_URL = os.environ.get("LOCAL_LLM_BASE_URL", "")
# When set, every provider without a key of its own is served by the upstream simulator.
AKA_SIMULATOR_URL = os.environ.get("AKA_SIMULATOR_URL", "")

# Upstream calls: timeouts (seconds), retries per model, backoff.
AKA_UPSTREAM_CONNECT_TIMEOUT = float(os.environ.get("AKA_UPSTREAM_CONNECT_TIMEOUT", "5"))
# The read timeout is the stall timeout: how long a model may keep a call waiting for its
# first byte or between chunks (then, before the first byte, the next model is tried).
# Per model: AKA_UPSTREAM_STALL_TIMEOUTS="o3=120,gpt-4o-mini=10".
AKA_UPSTREAM_READ_TIMEOUT = float(os.environ.get("AKA_UPSTREAM_READ_TIMEOUT", "20"))
AKA_UPSTREAM_STALL_TIMEOUTS = os.environ.get("AKA_UPSTREAM_STALL_TIMEOUTS", "")
AKA_UPSTREAM_RETRIES = envint("AKA_UPSTREAM_RETRIES", 2)
AKA_RETRY_BASE_DELAY = float(os.environ.get("AKA_RETRY_BASE_DELAY", "0.1"))
AKA_MAX_RETRY_AFTER = float(os.environ.get("AKA_MAX_RETRY_AFTER", "2"))
# Seconds the in-process model catalog snapshot lives before it is reloaded.
AKA_CATALOG_TTL = float(os.environ.get("AKA_CATALOG_TTL", "5"))
# What `model: "auto"` means until the router decides per task.
AKA_AUTO_MODEL = os.environ.get("AKA_AUTO_MODEL", "gpt-4o-mini")
# The gateway's own async Postgres pool (ledger, cache) per worker process.
AKA_PG_POOL_SIZE = envint("AKA_PG_POOL_SIZE", 8)

# Ledger rows the database cannot take are spooled here and replayed every few seconds;
# per database, so a test run never replays into the demo's ledger. A volume in production.
AKA_LEDGER_SPOOL_DIR = Path(os.environ.get(
    "AKA_LEDGER_SPOOL_DIR", str(BASE_DIR / ".local" / "spool" / f"ledger-{DATABASES['default']['NAME']}")))
AKA_LEDGER_REPLAY_SECONDS = float(os.environ.get("AKA_LEDGER_REPLAY_SECONDS", "5"))
# The ledger is partitioned by month (apps.billing.partitions): partitions are made this
# many months ahead, and those of months ended more than AKA_LEDGER_RETENTION_MONTHS ago
# are dropped whole (0: kept forever; the rollups keep the dashboard's history either way).
AKA_LEDGER_PARTITIONS_AHEAD = envint("AKA_LEDGER_PARTITIONS_AHEAD", 3)
AKA_LEDGER_RETENTION_MONTHS = envint("AKA_LEDGER_RETENTION_MONTHS", 0)

# Semantic cache.
AKA_EMBEDDER = os.environ.get("AKA_EMBEDDER", "onnx")   # onnx | torch
# Threads one embedding may use: two take a query's embedding from 5.5 to 3.7 ms on an idle
# 2-core machine (they sleep rather than spin between runs, so a busy one loses little).
AKA_EMBED_THREADS = envint("AKA_EMBED_THREADS", 2)
AKA_MODEL_DIR = Path(os.environ.get("AKA_MODEL_DIR", str(BASE_DIR / ".local" / "models")))
AKA_CACHE_EF_SEARCH = envint("AKA_CACHE_EF_SEARCH", 64)
# Nearest entries fetched per lookup; the hit rule (apps.cache.decision) needs 20.
AKA_CACHE_CANDIDATES = envint("AKA_CACHE_CANDIDATES", 20)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# --- Dashboard ---------------------------------------------------------------------------
# Seconds between rollup refreshes (apps.dashboard.rollups: recomputes the last hours only);
# pages add the ledger's rows since the last complete hour themselves, so this bounds cost,
# not freshness.
AKA_ROLLUP_REFRESH_EVERY = envint("AKA_ROLLUP_REFRESH_EVERY", 60)
CELERY_BEAT_SCHEDULE["dashboard-refresh-rollups"] = {
    "task": "dashboard.refresh_rollups", "schedule": AKA_ROLLUP_REFRESH_EVERY}
# Seconds between the overview's htmx refreshes of its numbers.
AKA_OVERVIEW_REFRESH_SECONDS = envint("AKA_OVERVIEW_REFRESH_SECONDS", 5)

# --- Routing and speculation (apps.routing) ---------------------------------------------
# Circuit breaker per model and worker: consecutive failed attempts that open it, and the
# seconds it stays open before one call may try the model again.
AKA_BREAKER_FAILURES = envint("AKA_BREAKER_FAILURES", 5)
AKA_BREAKER_COOLDOWN = float(os.environ.get("AKA_BREAKER_COOLDOWN", "30"))
# Labelled neighbours the predictor reads per routed call.
AKA_ROUTING_NEIGHBOURS = envint("AKA_ROUTING_NEIGHBOURS", 16)
# Each process keeps a copy of the labels of the tenants it routes (apps.routing.labels):
# reloaded when older than this many seconds, so another process's labels count within it
# (plus one load); this process's own count from its next call.
AKA_ROUTING_LABELS_TTL = float(os.environ.get("AKA_ROUTING_LABELS_TTL", "10"))
# Memory for those copies per process, all tenants together: 1.5 KB per labelled prompt (a
# tenant with 10k labels on 5k prompts takes 8.8 MB). A tenant with more labels than fit is
# routed by the pgvector query instead (1.5-3 ms a call rather than under 1 ms).
AKA_ROUTING_MEMORY_MB = envint("AKA_ROUTING_MEMORY_MB", 32)

# --- Billing: Stripe, the meter outbox, invoices, suspension, quotas ----------------------
# Stripe is used when STRIPE_SECRET_KEY is set (a test-mode key for trials); otherwise the
# in-process fake when AKA_STRIPE_FAKE=1 (make demo, tests); otherwise no push at all.
AKA_STRIPE_FAKE = envbool("AKA_STRIPE_FAKE")
if AKA_STRIPE_FAKE and not STRIPE_WEBHOOK_SECRET:
    STRIPE_WEBHOOK_SECRET = "whsec_akarouter_fake"
AKA_STRIPE_TIMEOUT = float(os.environ.get("AKA_STRIPE_TIMEOUT", "10"))
AKA_STRIPE_METER_EVENT = os.environ.get("AKA_STRIPE_METER_EVENT", "akarouter_call")
AKA_BILLING_CURRENCY = os.environ.get("AKA_BILLING_CURRENCY", "usd")
# Billable calls are reported as one meter event per tenant per window of this many seconds.
AKA_METER_WINDOW_SECONDS = envint("AKA_METER_WINDOW_SECONDS", 10)
AKA_METER_OUTBOX_EVERY = float(os.environ.get("AKA_METER_OUTBOX_EVERY", "2"))
# Meter events sent per second at most, all workers together (Stripe's live limit is 1,000);
# ledger rows collected per outbox run.
AKA_METER_EVENTS_PER_SECOND = envint("AKA_METER_EVENTS_PER_SECOND", 500)
AKA_METER_BATCH = envint("AKA_METER_BATCH", 50000)
# Back-off after a failed send: base * 2^attempts seconds, capped.
AKA_METER_RETRY_BASE = float(os.environ.get("AKA_METER_RETRY_BASE", "2"))
AKA_METER_RETRY_MAX = float(os.environ.get("AKA_METER_RETRY_MAX", "300"))
# A send left unacknowledged longer than this is not resent (Stripe deduplicates for at
# least 24 hours); it is marked uncertain for reconciliation instead.
AKA_METER_DEDUP_HORIZON = envint("AKA_METER_DEDUP_HORIZON", 20 * 3600)
# Seconds a send may take before another run may retry its window (a worker died mid-send).
AKA_METER_LEASE_SECONDS = float(os.environ.get("AKA_METER_LEASE_SECONDS", "60"))
# Suspension: seconds after a failed payment before the gateway answers 402.
AKA_BILLING_GRACE_SECONDS = envint("AKA_BILLING_GRACE_SECONDS", 3 * 86400)
# Placeholder tax rate on our invoices, in basis points (2000 = 20%).
AKA_BILLING_TAX_RATE_BP = envint("AKA_BILLING_TAX_RATE_BP", 0)
CELERY_BEAT_SCHEDULE |= {
    "billing-meter-outbox": {"task": "billing.meter_outbox", "schedule": AKA_METER_OUTBOX_EVERY},
    "billing-period-close": {"task": "billing.period_close", "schedule": envint("AKA_PERIOD_CLOSE_EVERY", 3600)},
    "billing-reconcile": {"task": "billing.reconcile", "schedule": envint("AKA_RECONCILE_EVERY", 86400)},
    "billing-ledger-partitions": {"task": "billing.ledger_partitions",
                                  "schedule": envint("AKA_LEDGER_PARTITIONS_EVERY", 6 * 3600)},
}
# Prefix of meter event identifiers: unique per deployment sharing a Stripe account
# (empty: "aka-<database name>").
AKA_METER_NAMESPACE = os.environ.get("AKA_METER_NAMESPACE", "")

# --- Production: security, throttling, server, observability (issue 14) -------------------
# Behind a proxy: the header carrying the client's address (a META name, for example
# HTTP_X_FORWARDED_FOR) and how many proxies of ours append to it; unset: REMOTE_ADDR.
AKA_CLIENT_IP_HEADER = os.environ.get("AKA_CLIENT_IP_HEADER", "")
AKA_TRUSTED_PROXIES = envint("AKA_TRUSTED_PROXIES", 0)
# Logins: django-axes locks a username, and a client address, after this many failures
# in a row, for AXES_COOLOFF_TIME hours (a right password is refused meanwhile, 429).
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("AKA_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = float(os.environ.get("AKA_LOGIN_COOLOFF_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.tenants.throttle.client_ip"
AXES_USERNAME_FORM_FIELD = "username"
# Sign-ups (each can become a tenant) and password resets per client and hour; reset
# emails, and sign-up emails, per address and hour.
AKA_THROTTLE_SIGNUP_PER_CLIENT = envint("AKA_THROTTLE_SIGNUP_PER_CLIENT", 5)
AKA_THROTTLE_RESET_PER_CLIENT = envint("AKA_THROTTLE_RESET_PER_CLIENT", 10)
AKA_THROTTLE_RESET_PER_EMAIL = envint("AKA_THROTTLE_RESET_PER_EMAIL", 3)
AKA_SIGNUP_LINK_SECONDS = envint("AKA_SIGNUP_LINK_SECONDS", 24 * 3600)
# The file email backend's folder (development and the browser tests read mail there).
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / ".local" / "mail"))
# Seconds a client has to send the request body it announced (apps/core/bodies.py).
AKA_BODY_READ_TIMEOUT = float(os.environ.get("AKA_BODY_READ_TIMEOUT", "15"))
# Request headers: how many, and their total size, before a 431 (apps/core/request_limits.py).
AKA_MAX_HEADERS = envint("AKA_MAX_HEADERS", 100)
AKA_MAX_HEADER_BYTES = envint("AKA_MAX_HEADER_BYTES", 32 * 1024)
# HTTPS: TLS ends at the proxy (Ingress), which says so in X-Forwarded-Proto; plain HTTP
# is redirected, except the probes and the scrape, which come from inside the cluster.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("AKA_SSL_REDIRECT", "0" if DEBUG else "1")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = envint("AKA_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("AKA_HSTS_INCLUDE_SUBDOMAINS", "1")
# The header only makes the domain eligible; nothing is listed until someone submits it.
SECURE_HSTS_PRELOAD = envbool("AKA_HSTS_PRELOAD", "0" if DEBUG else "1")
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy on every Django page (django-csp). Everything the dashboard
# loads is its own: the stylesheet and htmx from /static/, no inline script or style
# (base.html tells htmx not to inject its indicator styles).
INSTALLED_APPS += ["csp"]
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Logs: one JSON object per line with the request id (apps/core/logs.py); "text" for people.
if os.environ.get("AKA_LOG_FORMAT", "text" if DEBUG else "json") == "json":
    LOGGING["formatters"] = {"json": {"()": "apps.core.logs.JsonFormatter"}}
    LOGGING["handlers"]["console"]["formatter"] = "json"
# The management API's OpenAPI schema (drf-spectacular), served at /api/schema/.
INSTALLED_APPS += ["drf_spectacular"]
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
SPECTACULAR_SETTINGS = {
    "TITLE": "AkaRouter management API",
    "DESCRIPTION": "Keys, settings and cache of the calling tenant. Authenticate with a logged-in session"
                   " or an API key issued with the admin scope (Authorization: Bearer aka_...).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}
# The cache's and the dashboard's function views do not declare their serializers yet
# (@extend_schema); until they do, their operations have no body schemas, which the
# schema generator reports as W002 on every `check`.
SILENCED_SYSTEM_CHECKS = ["drf_spectacular.W002"]
