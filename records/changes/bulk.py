"""Set-based change sets: delete all of a tab, and restore (undo) any batch.

A few statements for a million rows, behind the same plan() / apply() as a single change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from django.db import connection as db_connection
from django.db.models import Exists
from django.utils import timezone

from integrations.models import Integration
from records import counts
from records.audit import Actor, mark_changed, write_audit
from records.models import AuditEntry, Batch, BatchChange, RemoteId
from records.queries import source_row

from .engine import ChangeSetBase
from .storage import new_batch, table
from .types import REMOVED, Applied, Plan, ProgressCallback


def linked_target_rows(integration, record_type: str):
    """The target rows of every reference of one entity type of an integration."""
    return (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection=integration.target, record_type=record_type)
        .filter(Exists(source_row(integration).filter(record_type=record_type)))
    )


@dataclass
class DeleteAll(ChangeSetBase):
    """Remove every target id of one entity type of an integration: set-based, one batch.

    The set is derived here from tenant + integration + entity type, never from ids a browser
    sent. Rows are copied into BatchChange so the batch can be restored.
    """

    integration: Integration
    record_type: str
    actor: Actor
    kind: ClassVar = Batch.Kind.DELETE_ALL

    @property
    def tenant(self):
        return self.integration.tenant

    @property
    def size(self) -> int:
        """How big it is: the references it removes, as the engine keeps them counted."""
        return counts.counts_of(self.integration, self.record_type).linked

    def plan(self) -> Plan:
        result = Plan(self)
        result.counts[REMOVED] = linked_target_rows(self.integration, self.record_type).count()
        return result

    def tracker(self, plan: Plan) -> counts.Tracker:
        # Every tab that shows these target ids changes. This integration's counts follow
        # from the batch (`derived_counts`); another integration sharing the connection (rare)
        # is diffed over the records that lose their target id.
        tracker = counts.Tracker.for_connections(
            self.tenant,
            self.record_type,
            [self.integration.target_id],
            record_ids=(),
            derived=[self.integration],
        )
        if tracker.diffed:
            tracker.record_ids = set(
                linked_target_rows(self.integration, self.record_type).values_list(
                    "record_id", flat=True
                )
            )
        return tracker

    def derived_counts(self, applied: Applied) -> dict[int, dict[str, int]]:
        # Every reference of the tab was linked; now each is unlinked, and lost to this batch.
        removed = applied.counts[REMOVED]
        return {
            self.integration.pk: {
                counts.LINKED: -removed,
                counts.UNLINKED: removed,
                counts.LOST: removed,
            }
        }

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        tenant, integration = self.tenant, self.integration
        now = timezone.now()
        batch = new_batch(self, row_count=0, description="", at=now)
        progress("Saving the references to restore", 0, plan.counts[REMOVED])
        count = self._copy_into(batch)
        progress("Removing the target ids", count // 3, count)
        changed = BatchChange.objects.for_tenant(tenant).filter(batch=batch).values("record_id")
        RemoteId.objects.for_tenant(tenant).filter(
            connection=integration.target, record_type=self.record_type, record_id__in=changed
        ).delete()
        progress("Marking the records changed", 2 * count // 3, count)
        mark_changed(tenant, changed, self.actor, at=now)
        batch.row_count = count
        batch.description = (
            f"Deleted all {count} {self.record_type} references of "
            f"{integration.source.name} → {integration.target.name}"
        )
        batch.save(update_fields=["row_count", "description"])
        write_audit(
            tenant,
            self.actor,
            AuditEntry.Action.DELETE_ALL,
            record_type=self.record_type,
            integration=integration,
            connection=integration.target,
            batch=batch,
            before={"count": count},
            after={"count": 0},
            summary=batch.description,
            at=now,
        )
        plan.counts[REMOVED] = count
        progress("Done", count, count)
        return Applied(plan, batch)

    def _copy_into(self, batch: Batch) -> int:
        """Copy the tab's target rows into the batch (one statement); how many there were."""
        select_sql, params = (
            linked_target_rows(self.integration, self.record_type)
            .values_list("record_id", "connection_id", "record_type", "remote_id", "remote_ref")
            .query.sql_with_params()
        )
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table(BatchChange)} "  # noqa: S608 (table names, not input)
                "(tenant_id, batch_id, change, record_id, connection_id, record_type, remote_id, "
                f"remote_ref) SELECT %s, %s, %s, sub.* FROM ({select_sql}) sub",
                [self.tenant.pk, batch.pk, BatchChange.Change.REMOVED, *params],
            )
            return cursor.rowcount
