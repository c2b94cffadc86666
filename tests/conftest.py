import contextlib
import os
import sys

import pytest
from django.db import connection
from psycopg.pq import TransactionStatus

from common.citus.tables import uses_citus_backend
from records.audit import Actor

from .factories import (
    ConnectionFactory,
    IntegrationFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)

# Playwright's sync API runs an event loop in the test thread; Django's live_server then
# refuses ORM calls from that thread unless told it is fine.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_sessionstart(session):
    """In CI a missing database or browser fails the run instead of skipping tests."""
    expected = os.environ.get("REFDESK_EXPECT_DB")
    if expected and connection.vendor != expected:
        pytest.exit(f"Expected the {expected} database, got {connection.vendor}.", returncode=3)
    if os.environ.get("REFDESK_REQUIRE_BROWSER") and not os.path.exists(
        os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    ):
        pytest.exit("Chromium is required for the browser tests but is missing.", returncode=3)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Debian's Chromium: Playwright cannot download its own browser on these machines.
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
    }


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # live_server serves unhashed static names; WhiteNoise's manifest storage would 500.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # PBKDF2 is deliberately slow; tests log users in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    # Each test starts from an empty cache (connection names, throttles): ids are reused
    # across tests, so a cached value could belong to another test's tenant.
    from django.core.cache import cache

    cache.clear()


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` (row-lock races, trigram plans) belong to the PostgreSQL run.

    On SQLite they are deselected, not skipped, and said so in the header: a skip would read
    as "something was missing". On PostgreSQL (REFDESK_EXPECT_DB=postgresql in CI) they run.
    """
    if connection.vendor == "postgresql":
        return
    kept, postgres_only = [], []
    for item in items:
        (postgres_only if item.get_closest_marker("postgres") else kept).append(item)
    if postgres_only:
        config.hook.pytest_deselected(items=postgres_only)
        items[:] = kept


def pytest_report_header(config):
    if connection.vendor != "postgresql":
        return (
            "database: sqlite; tests marked `postgres` are deselected (the PostgreSQL run has them)"
        )
    return "database: postgresql"


class World:
    """One tenant with a Shopify -> Fortnox integration, an admin and a support user,
    and a second tenant (other) with its own integration: enough for most tests."""

    def __init__(self):
        self.tenant = TenantFactory(name="Acme AB", slug="acme")
        self.shop = ConnectionFactory(tenant=self.tenant, name="Shopify", connector__code="shopify")
        self.erp = ConnectionFactory(tenant=self.tenant, name="Fortnox", connector__code="fortnox")
        self.integration = IntegrationFactory(
            tenant=self.tenant, source=self.shop, target=self.erp, name="Shopify -> Fortnox"
        )
        self.admin = UserFactory(username="anna")
        self.support = UserFactory(username="sven")
        MembershipFactory(user=self.admin, tenant=self.tenant, role="admin")
        MembershipFactory(user=self.support, tenant=self.tenant, role="support")
        self.actor = Actor.for_user(self.admin)

        self.other_tenant = TenantFactory(name="Other Oy", slug="other")
        self.other_integration = IntegrationFactory(tenant=self.other_tenant)
        self.outsider = UserFactory(username="otto")
        MembershipFactory(user=self.outsider, tenant=self.other_tenant, role="admin")


@pytest.fixture
def world(db):
    return World()


@pytest.fixture
def admin_client(client, world):
    client.force_login(world.admin)
    return client


@pytest.fixture
def support_client(client, world):
    client.force_login(world.support)
    return client


# --- Citus: the app's statements stay on one shard -------------------------------------------

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
TESTS = os.path.join(REPOSITORY, "tests") + os.sep


# Model and queryset methods (EngineWrittenQuerySet.update, TenantQuerySet.delete) act for
# whoever calls them: the caller decides whether their statement is the app's or a test's.
MODEL_LAYER = ("models.py", "tenant_keys.py")


def _issued_by_a_test() -> bool:
    """Whether the code nearest the database call is the suite's own (a factory, a test's
    setup or assertion) rather than the app's."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if (
            path.startswith(REPOSITORY)
            and os.sep + ".venv" + os.sep not in path
            and not path.endswith(MODEL_LAYER)
        ):
            return path.startswith(TESTS)
        frame = frame.f_back
    return True


def _tests_may_fan_out(execute, sql, params, many, context):
    """On the cluster every connection runs with `citus.multi_task_query_log_level = error`
    (CITUS_FAN_OUT=error, .ci/run): a statement that would visit every shard fails. The app's
    statements must never; a test's own (a factory, `Record.objects.get(local_id=…)` in an
    assertion) may read across tenants, so the guard is lifted around those alone."""
    raw = context["connection"].connection
    if not _issued_by_a_test() or raw.info.transaction_status == TransactionStatus.INERROR:
        # (In a failed transaction only the rollback runs, and a SET would fail before it.)
        return execute(sql, params, many, context)
    raw.execute("SET citus.multi_task_query_log_level = 'off'")
    try:
        return execute(sql, params, many, context)
    finally:
        with contextlib.suppress(Exception):  # an aborted transaction resets it anyway
            raw.execute("SET citus.multi_task_query_log_level = 'error'")


@pytest.fixture(autouse=True)
def _fan_out_guard_for_the_app_only():
    if not uses_citus_backend(connection) or os.environ.get("CITUS_FAN_OUT") != "error":
        yield
        return
    with connection.execute_wrapper(_tests_may_fan_out):
        yield
