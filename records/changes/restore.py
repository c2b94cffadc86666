"""Restore: undo any batch (a single delete, an import, a delete-all of a million rows).

Set-based: a few statements whatever the size, behind the same plan() / apply().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from django.db import connection as db_connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from common.errors import DomainError
from common.sets import chunks
from records import counts
from records.audit import Actor, mark_changed, write_audit
from records.history import display_name
from records.models import AuditEntry, Batch, BatchChange, Record, RemoteId

from . import merge, messages
from .engine import ChangeSetBase, integration_sides, lock_written_tabs
from .storage import table
from .types import NEW, REMOVED, Applied, Plan, ProgressCallback


class RestoreConflict(DomainError):
    status = 409


@dataclass
class Restore(ChangeSetBase):
    """Undo a batch: put back the rows it removed, take away the rows it added.

    Refused as a whole (nothing changes) when an id it would put back now belongs to another
    record, or when the batch was already undone.
    """

    batch: Batch
    actor: Actor
    # A restore makes no batch of its own: it marks the batch it undoes as restored.
    kind: ClassVar = None
    strict: ClassVar = True

    @property
    def tenant(self):
        return self.batch.tenant

    @property
    def integration(self):
        return self.batch.integration

    @property
    def record_type(self):
        return self.batch.record_type

    def lock(self) -> None:
        connection_ids = integration_sides(self.integration) or self._written_connections()
        lock_written_tabs(self, connection_ids, exclusive=True)
        self.batch = Batch.objects.for_tenant(self.tenant).select_for_update().get(pk=self.batch.pk)

    def _written_connections(self) -> set[int]:
        """A batch of no integration (an API connection's own id): the connections it wrote."""
        return set(self._changes().order_by().values_list("connection_id", flat=True).distinct())

    def _changes(self, change: str | None = None):
        rows = BatchChange.objects.for_tenant(self.tenant).filter(batch=self.batch)
        return rows if change is None else rows.filter(change=change)

    def _still_added(self):
        """The remote-id rows this batch added that are still there, unchanged."""
        added = self._changes(BatchChange.Change.ADDED)
        return RemoteId.objects.for_tenant(self.tenant).filter(
            Exists(
                added.filter(
                    record_id=OuterRef("record_id"),
                    connection_id=OuterRef("connection_id"),
                    remote_id=OuterRef("remote_id"),
                )
            )
        )

    @property
    def _restores_a_tab(self) -> bool:
        """Undoing a delete-all: its counts follow from the batch (`derived_counts`)."""
        return self.batch.kind == Batch.Kind.DELETE_ALL and self.integration is not None

    def tracker(self, plan: Plan) -> counts.Tracker:
        rows = self._changes().order_by()
        connection_ids = set(rows.values_list("connection_id", flat=True).distinct())
        derived = [self.integration] if self._restores_a_tab else []
        tracker = counts.Tracker.for_connections(
            self.tenant, self.record_type, connection_ids, record_ids=(), derived=derived
        )
        if tracker.diffed:
            tracker.record_ids = set(rows.values_list("record_id", flat=True))
        return tracker

    def derived_counts(self, applied: Applied) -> dict[int, dict[str, int]]:
        if not self._restores_a_tab:
            return {}
        # Before the restore every record of the batch that the source still knows was
        # unlinked and lost (to this batch; a record linked again since refuses the restore).
        # Now each is linked.
        integration = self.integration
        source_rows = RemoteId.objects.for_tenant(self.tenant).filter(
            connection=integration.source, record_id=OuterRef("record_id")
        )
        put_back = (
            self._changes(BatchChange.Change.REMOVED)
            .filter(connection=integration.target)
            .filter(Exists(source_rows))
            .count()
        )
        return {
            integration.pk: {
                counts.LINKED: put_back,
                counts.UNLINKED: -put_back,
                counts.LOST: -put_back,
            }
        }

    def plan(self) -> Plan:
        if self.batch.is_restored:
            return Plan.refused(
                self,
                messages.already_undone(display_name(self.batch.tenant_id, self.batch.restored_by)),
            )
        still_added = self._still_added()
        blocked = self._blocked(still_added)
        if blocked:
            count, example = blocked
            return Plan.refused(self, RestoreConflict(messages.ids_in_use_again(count, example)))
        result = Plan(self)
        result.counts[NEW] = self._changes(BatchChange.Change.REMOVED).count()
        result.counts[REMOVED] = still_added.count()
        return result

    def _blocked(self, still_added) -> tuple[int, str] | None:
        """How many ids it would put back are held again, and one of them; None if none.

        An id or a record slot is blocked when something other than this batch's own
        additions (taken away first, so they do not block the put-back) holds it now.
        """
        id_taken = RemoteId.objects.for_tenant(self.tenant).filter(
            connection_id=OuterRef("connection_id"),
            record_type=OuterRef("record_type"),
            remote_id=OuterRef("remote_id"),
        )
        slot_taken = RemoteId.objects.for_tenant(self.tenant).filter(
            record_id=OuterRef("record_id"), connection_id=OuterRef("connection_id")
        )
        blocked = self._changes(BatchChange.Change.REMOVED).filter(
            Exists(id_taken.exclude(pk__in=still_added.values("pk")))
            | Exists(slot_taken.exclude(pk__in=still_added.values("pk")))
        )
        examples = list(blocked.values_list("remote_id", flat=True)[:1])
        retired_blocked = merge.ids_in_use_again(
            self.tenant, self.batch, merge.retired_in(self.batch)
        )
        if not examples and not retired_blocked:
            return None
        count = (blocked.count() if examples else 0) + len(retired_blocked)
        return count, (examples or retired_blocked)[0]

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        batch, tenant = self.batch, self.tenant
        total = plan.counts[NEW] + plan.counts[REMOVED]
        taken_away = self._still_added().delete()[0]
        progress("Putting the references back", taken_away, total)
        # Records the batch removed (merged duplicates) come back first, with their local ids.
        merge.put_back_records(tenant, merge.retired_in(batch))
        put_back = self._put_back_removed()
        progress("Marking the records changed", taken_away + put_back, total)
        now = timezone.now()
        mark_changed(tenant, self._changes().values("record_id"), self.actor, at=now)
        _delete_records_left_without_ids(tenant, batch.details.get("created_record_ids") or [])
        batch.restored_at, batch.restored_by = now, str(self.actor)
        batch.save(update_fields=["restored_at", "restored_by"])
        self._audit(taken_away, put_back, at=now)
        plan.counts[NEW], plan.counts[REMOVED] = put_back, taken_away
        progress("Done", total, total)
        return Applied(plan, batch)

    def _put_back_removed(self) -> int:
        select_sql, params = (
            self._changes(BatchChange.Change.REMOVED)
            .values_list(
                "tenant_id", "record_id", "connection_id", "record_type", "remote_id", "remote_ref"
            )
            .query.sql_with_params()
        )
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table(RemoteId)} "  # noqa: S608 (table names, not input)
                "(tenant_id, record_id, connection_id, record_type, remote_id, remote_ref) "
                f"SELECT sub.* FROM ({select_sql}) sub",
                params,
            )
            return cursor.rowcount

    def _audit(self, taken_away: int, put_back: int, *, at) -> None:
        batch = self.batch
        single = batch.row_count == 1 and batch.kind == Batch.Kind.DELETE
        removed = self._changes(BatchChange.Change.REMOVED)
        write_audit(
            self.tenant,
            self.actor,
            AuditEntry.Action.RESTORE,
            record=removed.first().record if single and put_back else None,
            record_type=batch.record_type,
            integration=self.integration,
            batch=batch,
            before={"count": taken_away} if taken_away else None,
            after={"count": put_back},
            summary=f"Restored: {batch.description}",
            at=at,
        )


def _delete_records_left_without_ids(tenant, record_ids: list[int]) -> None:
    """Records a batch created and its restore emptied: they did not exist before it."""
    has_ids = RemoteId.objects.for_tenant(tenant).filter(record_id=OuterRef("pk"))
    for chunk in chunks(record_ids):
        Record.objects.for_tenant(tenant).filter(pk__in=chunk).filter(~Exists(has_ids)).delete()
