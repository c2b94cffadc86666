"""refdesk settings: one module, configured from the environment (12-factor).

DATABASE_URL  default: SQLite file db.sqlite3 in the project folder
CACHE_URL     default: a per-process memory cache; redis://host:6379/1 for one shared by every
              app server (README, "Production": several machines)
SECRET_KEY    required when DEBUG is off; a random per-process key otherwise
DEBUG         "1"/"true" turns on debug mode (off by default: safe for production)
ALLOWED_HOSTS comma-separated; defaults to localhost names in debug mode
"""

import ipaddress
import os
import secrets
import sys
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG")
# Under pytest settings load before any conftest can set the environment.
TESTING = "pytest" in sys.modules

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = secrets.token_urlsafe(50)

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG or TESTING else []
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "csp",  # django-csp: its system checks (the middleware is below)
    "django_filters",
    "django_htmx",
    "ninja",  # serves Swagger UI from its bundled static files at /api/v1/docs (no CDN)
    "django_tasks",
    "django_tasks_db",
    "integrations",
    "records",
    "references",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy (django-csp, policy below) and Permissions-Policy.
    "csp.middleware.CSPMiddleware",
    "config.security.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # An error under /api/ that no API view answered (an unknown route, a method a route does
    # not take) still gets the API's JSON error shape.
    "config.security.ApiErrorsAsJsonMiddleware",
    # HTML is compressed (a References page is ~90 KiB); Django pads gzip output with random
    # bytes against BREACH, since pages carry a CSRF token beside reflected search terms.
    "config.compression.HtmlGZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.htmx.VaryOnHtmxMiddleware",
    "config.security.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"

# `citus://user@coordinator:port/name`: PostgreSQL on a Citus cluster (config/citus; README,
# "From one PostgreSQL to Citus").
dj_database_url.register("citus", "config.citus")(lambda _config: None)

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# "web" in the app servers (config/wsgi.py, config/asgi.py set it): their database sessions
# get the limits of a request someone waits for. Workers and commands (migrate, jobs) do not.
REFDESK_PROCESS = os.environ.get("REFDESK_PROCESS", "")


def postgres_session_options(process: str) -> dict:
    """Connection options for PostgreSQL sessions (README, "Production": database sessions).

    Both ends notice a peer that vanished without closing (a worker's machine, a network
    partition) within about a minute instead of the kernel's two hours, so its locks go with
    it; a query's backend notices a closed client while it runs. A session idle inside a
    transaction (a hung process) is ended. The app servers also give up on a statement after
    gunicorn's timeout and on a lock after a few seconds; a job's worker waits for its tab's
    lock as long as it takes and runs long statements, so it has no such limits.
    """
    web = process == "web"
    env = os.environ.get
    server = {
        "tcp_keepalives_idle": env("DB_KEEPALIVES_IDLE", "30"),
        "tcp_keepalives_interval": env("DB_KEEPALIVES_INTERVAL", "10"),
        "tcp_keepalives_count": env("DB_KEEPALIVES_COUNT", "3"),
        "client_connection_check_interval": env("DB_CLIENT_CHECK_INTERVAL", "10s"),
        "idle_in_transaction_session_timeout": env(
            "DB_IDLE_IN_TRANSACTION_TIMEOUT", "60s" if web else "10min"
        ),
    }
    if web:
        server["statement_timeout"] = env("DB_WEB_STATEMENT_TIMEOUT", "30s")
        server["lock_timeout"] = env("DB_WEB_LOCK_TIMEOUT", "10s")
    return {
        # libpq's side: the client notices a server that vanished.
        "keepalives": 1,
        "keepalives_idle": int(server["tcp_keepalives_idle"]),
        "keepalives_interval": int(server["tcp_keepalives_interval"]),
        "keepalives_count": int(server["tcp_keepalives_count"]),
        "options": " ".join(f"-c {name}={value}" for name, value in server.items()),
    }


# DATABASE_POOLER=pgbouncer: the app reaches PostgreSQL through PgBouncer in transaction mode.
# A session there is lent out per transaction, so nothing may rely on the session: PgBouncer
# refuses the startup parameters (`options`) the session limits above are sent in (set them
# on the database roles instead: README, "Production"), and a server-side cursor (a named
# cursor lives across transactions in its session) is turned off.
DATABASE_POOLER = os.environ.get("DATABASE_POOLER", "").strip().lower()
if DATABASE_POOLER not in ("", "pgbouncer"):
    raise ImproperlyConfigured("DATABASE_POOLER is 'pgbouncer' or unset.")
DATABASE_IS_CITUS = DATABASES["default"]["ENGINE"] == "config.citus"
if DATABASES["default"]["ENGINE"] in ("django.db.backends.postgresql", "config.citus"):
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(postgres_session_options(REFDESK_PROCESS))
    if DATABASE_IS_CITUS:
        MIDDLEWARE.append("config.citus.middleware.ResellerAdminSpansTenants")
        # A transaction that read several shards may then write a reference table (Citus
        # needs its shard writes in one connection per node for that). The guard: a query
        # that would visit every shard fails instead of running (the suite runs with it, so a
        # query missing its tenant fails its test; common/citus/tables.FAN_OUT_ALLOWED).
        # SET LOCAL (the lock wait limit, a count's timeout) reaches the workers too.
        DATABASES["default"]["OPTIONS"]["options"] += (
            " -c citus.multi_shard_modify_mode=sequential"
            " -c citus.propagate_set_commands=local"
            " -c citus.enable_local_execution=off"
            f" -c citus.multi_task_query_log_level={os.environ.get('CITUS_FAN_OUT', 'off')}"
        )
    if DATABASE_POOLER == "pgbouncer":
        del DATABASES["default"]["OPTIONS"]["options"]  # libpq's keepalives stay: client-side
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Persistent connections buy nothing on SQLite; WAL lets readers run beside a writer.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "timeout": 20}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def cache_from_url(url: str) -> dict:
    """CACHES["default"] from CACHE_URL: redis:// or rediss:// (Django's Redis cache; the
    database number is the URL's path), or locmem:// (the per-process default)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "refdesk",
        }
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    raise ImproperlyConfigured(f"CACHE_URL: unknown scheme {scheme!r} (redis://, locmem://).")


# What is cached (integrations/names.py: a tenant's connection names, for a minute) is only a
# label, but with several app servers a rename shows at once everywhere only in a shared cache.
CACHES = {"default": cache_from_url(os.environ.get("CACHE_URL", "") or "locmem://")}

# Background jobs (big change sets: records/jobs.py) on Django's Tasks API (django-tasks, the
# backport of Django 6's django.tasks). TASKS_BACKEND=db (default) keeps them in the database:
# run `manage.py db_worker`. TASKS_BACKEND=rq puts them on Redis (REDIS_URL) for workers on
# several machines: run `manage.py rqworker default --job-class django_tasks_rq.Job`.
TASKS_BACKEND = os.environ.get("TASKS_BACKEND", "db")
if TASKS_BACKEND == "rq":
    INSTALLED_APPS.append("django_rq")
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {
        "default": {"URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")},
    }
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# A change set that writes more rows than this runs as a background job with a progress bar;
# smaller ones run in the request.
REFDESK_JOB_THRESHOLD = int(os.environ.get("REFDESK_JOB_THRESHOLD", "5000"))
# A running job's worker says it lives this often (seconds); the sweeper (`manage.py jobs
# --requeue`) fails, restartable, a job whose worker has been silent for WORKER_TIMEOUT, and
# queues again one that no worker claimed within REQUEUE_AFTER (its enqueue failed).
REFDESK_JOB_HEARTBEAT = float(os.environ.get("REFDESK_JOB_HEARTBEAT", "10"))
REFDESK_JOB_WORKER_TIMEOUT = int(os.environ.get("REFDESK_JOB_WORKER_TIMEOUT", "120"))
REFDESK_JOB_REQUEUE_AFTER = int(os.environ.get("REFDESK_JOB_REQUEUE_AFTER", "60"))
# An uploaded import of more lines than this is checked (planned) by a background job; a
# smaller one in the upload request (planning, which writes nothing, takes ~1 s per 50,000).
REFDESK_PLAN_JOB_THRESHOLD = int(os.environ.get("REFDESK_PLAN_JOB_THRESHOLD", "50000"))
# Above this many target ids of a type, Health's duplicates come from a scan job
# (references.findings.scans), not from every page view.
REFDESK_HEALTH_LIVE_ROWS = int(os.environ.get("REFDESK_HEALTH_LIVE_ROWS", "50000"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sessions live in the database so any number of app servers can run behind a balancer.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Stockholm")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy, sent by django-csp's CSPMiddleware. No inline scripts or styles
# anywhere: htmx and our JS are static files, htmx's injected indicator style is off (base.html).
# A view that needs more says so with django-csp's decorators (the API docs: records/api.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
    },
}
# Sent by config.security.PermissionsPolicyMiddleware.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=()"
# The token reaches htmx through base.html's hx-headers; no script needs to read the cookie.
CSRF_COOKIE_HTTPONLY = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto this redirects only plain
    # http requests; SECURE_SSL_REDIRECT=0 for a local http-only run (benchmarks). The test
    # client speaks plain http, so the suite leaves it off.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not TESTING)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Failed log-ins and API authentications are throttled per client address (integrations/
# throttling.py). Behind proxies every request comes from a proxy's address: name them
# (addresses or networks, comma-separated) and X-Forwarded-For is read from a request that
# comes from one of them, its rightmost entry that is not itself one of them being the client.
# From anywhere else the header is ignored, so nobody picks their own address.
REFDESK_TRUSTED_PROXIES = env_list("REFDESK_TRUSTED_PROXIES", [])
for _proxy in REFDESK_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"REFDESK_TRUSTED_PROXIES: {_proxy!r} is no address") from None
if env_bool("AUTH_THROTTLE_TRUST_X_FORWARDED_FOR") and not REFDESK_TRUSTED_PROXIES:
    # The old switch trusted the header from any address. Dropping it silently would count
    # every client behind the proxy as one address (one locks out all); keeping it would
    # let anyone pick their address. Say what to set instead.
    raise ImproperlyConfigured(
        "AUTH_THROTTLE_TRUST_X_FORWARDED_FOR is replaced by REFDESK_TRUSTED_PROXIES: "
        "list your proxies' addresses (e.g. 10.0.0.5,10.0.0.0/24)."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
