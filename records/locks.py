"""Who waits for whom while references are written: a lock per References tab, and a person
never waits long for a bulk change.

A tab is one integration and one entity type. Its lock is its kept-count row (ReferenceCount,
records/counts.py), which every change set of the tab writes anyway:
- a bulk change set (delete all, restore, an import, a Health fix) takes the rows of the tabs
  it writes FOR UPDATE, for its whole transaction: a single change landing between its reads
  and its writes would be lost or recorded wrongly;
- a single change (an add, an edit, a delete, an API write) takes them FOR KEY SHARE. That
  does not conflict with the row-level increments (`SET linked = linked + ...`) it and other
  single changes make later, so single changes hold it together and never deadlock on it,
  but it does conflict with a bulk change's FOR UPDATE.
The tabs a change set locks are those that show ids of the connections it writes (both sides
of its integration; an API write's own connection): its own, and another integration's of the
same entity type that shares a connection, whose counts it keeps too (picked as counts.Tracker
picks them). Every change set takes them one at a time in integration order, before
any record's lock, so two never deadlock. Another entity type of the same integration is
another row: its edits go through while a job writes this tab.

A person waiting (a page, an API call) gives up on any lock after LOCK_TIMEOUT and is told
which bulk change holds it (BulkChangeRunning, 409), instead of a spinning request and then
gunicorn's 30 s timeout: `apply` for change sets, `person_waiting` for the writes that lock a
record before the engine runs (the API's, custom data). A background job (`background()`)
waits as long as it takes: it shows as queued meanwhile. PostgreSQL only: SQLite runs one
writer at a time anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import OperationalError, transaction
from django.db import connection as db_connection

from . import counts
from .errors import BulkChangeRunning
from .models import Job, ReferenceCount

# Well under gunicorn's 30 s, and within the 5 s a person waits for an answer.
LOCK_TIMEOUT = "4s"
# SQLSTATE lock_not_available: a statement waited LOCK_TIMEOUT for a lock.
LOCK_NOT_AVAILABLE = "55P03"

_in_background = ContextVar("records_locks_in_background", default=False)


@contextmanager
def background() -> Iterator[None]:
    """Change sets applied inside wait for their locks without a timeout (a job's worker)."""
    token = _in_background.set(True)
    try:
        yield
    finally:
        _in_background.reset(token)


def limit_lock_waits() -> None:
    """Give up on a lock after LOCK_TIMEOUT for the rest of this transaction, unless a
    background job runs it."""
    if db_connection.vendor != "postgresql" or _in_background.get():
        return
    with db_connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def is_lock_timeout(error: OperationalError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE


def lock_tabs(tenant, record_type: str, integrations, *, exclusive: bool) -> None:
    """Lock the tabs (`record_type` of each of `integrations`): FOR UPDATE when `exclusive`
    (a bulk change), else FOR KEY SHARE (see the module's docstring). One tab at a time, in
    integration order, so that no two change sets take them in different orders."""
    if db_connection.vendor != "postgresql":
        return
    mode = "UPDATE" if exclusive else "KEY SHARE"
    table = db_connection.ops.quote_name(ReferenceCount._meta.db_table)
    for integration in sorted(integrations, key=lambda integration: integration.pk):
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {table} WHERE tenant_id = %s AND integration_id = %s "  # noqa: S608
                f"AND record_type = %s FOR {mode}",
                [tenant.pk, integration.pk, record_type],
            )
            found = cursor.fetchone()
        if found is None:
            # A tab not counted yet: counted now, under its new row's lock (held to the end
            # of this transaction). Its lock is taken here, before any record's, like every
            # tab's: a change set that waits for a bulk change's new row holds nothing the
            # bulk change needs. An empty row instead would read as "counted" to the change
            # set's tracker, which would then add its difference to zero.
            counts.recount(integration, record_type)


def running_job(tenant, record_type: str, integration=None) -> Job | None:
    """The background job most likely holding the lock of a tab: a running one before a
    queued one, one of `integration` before one of another integration that shares a
    connection with it."""
    active = Job.objects.for_tenant(tenant).filter(
        record_type=record_type, state__in=(Job.State.RUNNING, Job.State.QUEUED)
    )
    integration_id = integration.pk if integration is not None else None
    return min(
        active,
        key=lambda job: (
            job.state != Job.State.RUNNING,
            job.integration_id != integration_id,
            job.created_at,
        ),
        default=None,
    )


def bulk_change_running(tenant, record_type: str, integration=None) -> BulkChangeRunning:
    return BulkChangeRunning(record_type, running_job(tenant, record_type, integration))


@contextmanager
def person_waiting(tenant, record_type: str, integration=None) -> Iterator[None]:
    """A transaction a person waits for, outside the change engine (the API's record and
    custom-data writes): a lock held by a bulk change is given up after LOCK_TIMEOUT, and the
    error names the change."""
    try:
        with transaction.atomic():
            limit_lock_waits()
            yield
    except OperationalError as error:
        if not is_lock_timeout(error):
            raise
        raise bulk_change_running(tenant, record_type, integration) from error
