"""Several app servers and workers (README, "Production": several machines): one shared cache
from CACHE_URL, and PgBouncer in transaction mode (DATABASE_POOLER). Settings are read in a
fresh process started the way production starts it, since they are read once at start-up."""

import json
import os
import subprocess
import sys

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from tests.factories import make_reference

# A Redis database of these tests' own (the shared Redis on 127.0.0.1 serves others too).
REDIS_URL = os.environ.get("REFDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

SETTINGS = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
{setup}
from django.conf import settings
from django.core.cache import caches
from django.db import connection
database = connection.settings_dict
shown = {{
    "cache": type(caches["default"]).__module__ + "." + type(caches["default"]).__name__,
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "server_side_cursors_off": database.get("DISABLE_SERVER_SIDE_CURSORS", False),
    "startup_options": database.get("OPTIONS", {{}}).get("options"),
    "keepalives": database.get("OPTIONS", {{}}).get("keepalives"),
}}
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        for name in ("statement_timeout", "idle_in_transaction_session_timeout"):
            cursor.execute("SHOW " + name)
            shown[name] = cursor.fetchone()[0]
print(json.dumps(shown))
"""


def started(environment: dict, setup: str = "import django; django.setup()") -> dict:
    """The settings a process started with `environment` (on top of the test run's) has."""
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("REFDESK_PROCESS", "CACHE_URL", "DATABASE_POOLER")
        },
        "SECRET_KEY": "x",
        **environment,
    }
    done = subprocess.run(
        [sys.executable, "-c", SETTINGS.format(setup=setup)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def test_without_cache_url_each_process_has_its_own_memory_cache():
    shown = started({"DATABASE_URL": "sqlite:////tmp/refdesk-unused.sqlite3"})
    assert shown["cache"] == "django.core.cache.backends.locmem.LocMemCache"


def test_cache_url_gives_every_app_server_the_one_redis_cache():
    shown = started(
        {"DATABASE_URL": "sqlite:////tmp/refdesk-unused.sqlite3", "CACHE_URL": REDIS_URL}
    )
    assert shown["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert shown["cache_location"] == REDIS_URL


def test_an_unknown_cache_url_stops_the_start():
    env = {
        **os.environ,
        "SECRET_KEY": "x",
        "DATABASE_URL": "sqlite:////tmp/refdesk-unused.sqlite3",
        "CACHE_URL": "memcached://127.0.0.1:11211",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "CACHE_URL: unknown scheme 'memcached'" in done.stderr


@pytest.fixture
def shared_cache(settings):
    """This process's cache on Redis, as CACHE_URL makes it; emptied before and after."""
    store = redis.Redis.from_url(REDIS_URL)
    try:
        store.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not running at {REDIS_URL}")
    store.flushdb()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "refdesk",
        }
    }
    yield store
    store.flushdb()


@pytest.mark.django_db
def test_with_a_shared_cache_every_app_server_names_a_connection_as_renamed(
    shared_cache, support_client, world
):
    linked = make_reference(world.integration, source_id="5001", target_id="INV-1")
    type(linked).objects.filter(pk=linked.pk).update(
        last_modified_by=f"connection/{world.erp.connection_id}"
    )
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/"
    by_erp = f'title="connection/{world.erp.connection_id}">{{}}</span>'

    assert by_erp.format("Fortnox") in support_client.get(url).text
    # The names went to Redis, where another app server (another cache client) reads them ...
    another_server = RedisCache(REDIS_URL, {"KEY_PREFIX": "refdesk"})
    key = f"refdesk:connection-names:{world.tenant.pk}"
    assert another_server.get(key) == {
        world.shop.connection_id: "Shopify",
        world.erp.connection_id: "Fortnox",
    }
    # ... and what another server puts there is what this one shows.
    another_server.set(key, {world.erp.connection_id: "Fortnox ERP"}, 60)
    assert by_erp.format("Fortnox ERP") in support_client.get(url).text

    # A rename (on any server) forgets the names in the shared cache, for every server.
    world.erp.name = "Visma"
    world.erp.save()
    assert another_server.get(key) is None
    assert by_erp.format("Visma") in support_client.get(url).text


@pytest.mark.postgres
@pytest.mark.django_db
def test_behind_pgbouncer_no_startup_options_are_sent_and_no_server_side_cursor_is_used():
    """PgBouncer in transaction mode refuses startup `options`; the limits come from the
    role or database instead (README: `ALTER ROLE ... SET`), which a session then shows."""
    name = connection.settings_dict["NAME"]
    direct = started({"DATABASE_URL": database_url()}, setup="import config.wsgi")
    assert "statement_timeout=30s" in direct["startup_options"]
    assert direct["server_side_cursors_off"] is False

    def alter_database(setting: str) -> None:  # committed at once, outside the test's transaction
        with psycopg.connect(database_url(), autocommit=True) as own:
            own.execute(f'ALTER DATABASE "{name}" {setting}')

    alter_database("SET idle_in_transaction_session_timeout = 45000")
    try:
        pooled = started(
            {"DATABASE_URL": database_url(), "DATABASE_POOLER": "pgbouncer"},
            setup="import config.wsgi",
        )
    finally:
        alter_database("RESET idle_in_transaction_session_timeout")

    assert pooled["startup_options"] is None
    assert pooled["server_side_cursors_off"] is True
    assert pooled["keepalives"] == 1  # libpq's own, to PgBouncer: still sent
    assert pooled["statement_timeout"] == "0"  # not sent: set it on the role
    assert pooled["idle_in_transaction_session_timeout"] == "45s"  # from the database


def test_an_unknown_pooler_stops_the_start():
    env = {
        **os.environ,
        "SECRET_KEY": "x",
        "DATABASE_POOLER": "pgpool",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "DATABASE_POOLER" in done.stderr
