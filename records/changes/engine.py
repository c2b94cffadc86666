"""plan() and apply(), the two entry points, and what every change set declares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from django.db import IntegrityError, OperationalError, transaction
from django.db import connection as db_connection

from records import counts, locks
from records.errors import Conflict
from records.models import Batch, writing

from . import messages
from .kinds import kind_of
from .types import Applied, Plan, ProgressCallback


class ChangeSetBase(ABC):
    """What every change set has and declares.

    Each has `tenant`, `integration` (or None: an API connection's own id), `record_type` and
    `actor`, and declares `kind` (the Batch kind it becomes; None for a restore, which writes
    into the batch it undoes) and `strict` (one change that must succeed: a rejection raises
    its error instead of being reported).
    """

    kind: ClassVar[Batch.Kind | None]
    strict: ClassVar[bool] = False

    def lock(self) -> None:
        """Serialise with every other writer of the tabs it writes (see `lock_written_tabs`)."""
        lock_written_tabs(self, integration_sides(self.integration), exclusive=True)

    @abstractmethod
    def plan(self) -> Plan:
        """Check every change against the database and the rules; write nothing."""

    @abstractmethod
    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        """Write what `plan` accepted (inside apply()'s transaction and locks)."""

    @abstractmethod
    def tracker(self, plan: Plan) -> counts.Tracker:
        """What keeps the reference counts of this change set (records.counts)."""

    def derived_counts(self, applied: Applied) -> dict[int, dict[str, int]]:
        """The count deltas this change set derives from its own batch, by integration id,
        for the tracker's `derived` integrations (a whole-tab change): none by default."""
        return {}


def lock_written_tabs(change_set, connection_ids, *, exclusive: bool) -> None:
    """Serialise bulk changes with every other change of the References tabs they write.

    Delete-all copies rows into its batch, then deletes them: an add, edit or delete landing
    in between would be lost or recorded wrongly. The lock is per tab (integration and entity
    type), not per integration, so a job writing one tab never stops the others: bulk change
    sets take their tabs exclusively, single changes share them (records/locks.py). The tabs
    are those whose counts a change set writing ids of `connection_ids` keeps (the same
    integrations its counts.Tracker counts): every tab that shows such an id, including
    another integration's that shares a connection.

    Saving an integration's settings waits for them too: it deletes the integration's count
    rows (records.counts.forget, on post_save, in the save's transaction), which are the tab
    locks. (They no longer share the integration's row: on Citus a row lock on a reference
    table is a lock on its one shard, which every writer of a table pointing at it conflicts
    with, so every tenant's changes would have queued behind each other.)
    In a request, a lock held by a bulk change is given up after `locks.LOCK_TIMEOUT`; `apply`
    turns that into BulkChangeRunning. SQLite runs one writer at a time anyway.
    """
    if db_connection.vendor != "postgresql":
        return
    locks.limit_lock_waits()
    tenant, record_type = change_set.tenant, change_set.record_type
    tabs = counts.Tracker.for_connections(tenant, record_type, connection_ids).integrations
    locks.lock_tabs(tenant, record_type, tabs, exclusive=exclusive)


def integration_sides(integration) -> set[int]:
    """The connections whose ids a change set of `integration` writes: its source and target."""
    return set() if integration is None else {integration.source_id, integration.target_id}


def plan(change_set: ChangeSetBase) -> Plan:
    """Check every change against the database and the rules; writes nothing."""
    return change_set.plan()


def apply(change_set: ChangeSetBase, *, progress: ProgressCallback | None = None) -> Applied:
    """Write the accepted changes in one transaction as one restorable batch.

    Plans again inside the transaction, under the change set's locks, so what changed since a
    preview is seen. A strict change set (one change that must succeed: an add, an edit, an
    API write) raises the rejection instead. When a concurrent writer wins a race at the
    database constraint, the error is the same message the plan would give now.
    """
    progress = progress or (lambda phase, done, total: None)
    try:
        with transaction.atomic(), writing():
            change_set.lock()
            # After the lock: a job waiting behind another bulk change still shows as queued.
            progress("Checking", 0, 0)
            result = change_set.plan()
            raise_if_strict(change_set, result)
            tracker = change_set.tracker(result)
            tracker.start()
            applied = change_set.write(result, progress)
            tracker.finish(applied.record_ids, change_set.derived_counts(applied))
            return applied
    except IntegrityError as error:
        raise_if_strict(change_set, change_set.plan())
        raise Conflict(messages.RACE_LOST) from error
    except OperationalError as error:
        if not locks.is_lock_timeout(error):
            raise
        # A person waited LOCK_TIMEOUT for a lock a bulk change holds: say which one.
        raise locks.bulk_change_running(
            change_set.tenant, change_set.record_type, change_set.integration
        ) from error


def intent(plan: Plan, line) -> str:
    """What a planned change does, in words, for a preview ("Link 5001 → INV-1")."""
    return kind_of(line.change.action).intent(line, plan)


def raise_if_strict(change_set: ChangeSetBase, result: Plan) -> None:
    if change_set.strict and result.errors:
        raise result.errors[0]
