"""The References page's changes, each a change set for the one engine (records.changes).

A reference in integration S -> T for entity type E is a record of type E with a RemoteId row
for S (the source id) and one for T (the target id). Nothing is stored twice. These functions
only say *what* to change; records.changes checks the rules and writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists

from common.errors import InvalidValue
from records import changes, jobs
from records.audit import Actor
from records.changes import linked_target_rows
from records.models import AuditEntry, Batch, Job, Record, RemoteId
from records.queries import target_row
from records.validation import clean_remote_id, clean_remote_ref


@dataclass(frozen=True)
class ReferenceInput:
    source_id: str
    target_id: str
    source_ref: str = ""
    target_ref: str = ""

    def cleaned(self, integration=None) -> ReferenceInput:
        """Trimmed and validated; raises InvalidValue naming the field as the form labels it
        ("Shopify id", not "Source id")."""
        source, target = changes.side_names(integration)
        return ReferenceInput(
            source_id=clean_remote_id(self.source_id, field="source_id", label=f"{source} id"),
            target_id=clean_remote_id(self.target_id, field="target_id", label=f"{target} id"),
            source_ref=clean_remote_ref(self.source_ref, field="source_ref", label=f"{source} ref"),
            target_ref=clean_remote_ref(self.target_ref, field="target_ref", label=f"{target} ref"),
        )


def check_entity_type(integration, record_type: str) -> None:
    if record_type not in integration.synced_entity_types:
        raise InvalidValue(f"{integration} does not sync {record_type} records.")


def reference_change_set(integration, record_type, actor, kind, change_list, **options):
    """A change set of one integration and entity type."""
    check_entity_type(integration, record_type)
    return changes.ChangeSet(
        tenant=integration.tenant,
        record_type=record_type,
        actor=actor,
        kind=kind,
        changes=change_list,
        integration=integration,
        **options,
    )


def _single(integration, record_type, actor, kind, change, audit_action) -> Record:
    applied = changes.apply(
        reference_change_set(
            integration, record_type, actor, kind, [change], strict=True, audit_action=audit_action
        )
    )
    record_id = applied.record_ids[0] if applied.record_ids else change.record_id
    return Record.objects.for_tenant(integration.tenant).get(pk=record_id)


def add_reference(integration, record_type: str, data: ReferenceInput, actor: Actor) -> Record:
    """Link source id X to target id Y: give the record S knows as X its T row (or create it)."""
    data = data.cleaned(integration)
    change = changes.Change(
        changes.Action.LINK,
        source_id=data.source_id,
        source_ref=data.source_ref,
        target_id=data.target_id,
        target_ref=data.target_ref,
    )
    return _single(integration, record_type, actor, Batch.Kind.ADD, change, AuditEntry.Action.ADD)


def edit_reference(
    integration,
    record: Record,
    data: ReferenceInput,
    actor: Actor,
    *,
    version: int,
    revert: bool = False,
) -> Record:
    """Change the source or target id (or ref) of a record, refusing stale edits and conflicts.

    `revert` logs it as "Reverted" (a past value chosen from the history).
    """
    data = data.cleaned(integration)
    change = changes.Change(
        changes.Action.EDIT,
        record_id=record.pk,
        source_id=data.source_id,
        source_ref=data.source_ref,
        target_id=data.target_id,
        target_ref=data.target_ref,
        version=version,
    )
    kind, action = (
        (Batch.Kind.REVERT, AuditEntry.Action.REVERT)
        if revert
        else (Batch.Kind.EDIT, AuditEntry.Action.EDIT)
    )
    return _single(integration, record.record_type, actor, kind, change, action)


def delete_reference(
    integration, record: Record, actor: Actor, *, version: int | None = None
) -> Batch:
    """Remove the record's target id. The record and its source id stay; restorable.

    With `version`, of an edit and a delete opened on the same version only one wins: the
    delete never removes an id the person did not see.
    """
    change = changes.Change(changes.Action.UNLINK, record_id=record.pk, version=version)
    applied = changes.apply(
        reference_change_set(
            integration,
            record.record_type,
            actor,
            Batch.Kind.DELETE,
            [change],
            strict=True,
            audit_action=AuditEntry.Action.DELETE,
        )
    )
    return applied.batch


def delete_all_change_set(integration, record_type: str, actor: Actor) -> changes.DeleteAll:
    check_entity_type(integration, record_type)
    return changes.DeleteAll(integration=integration, record_type=record_type, actor=actor)


def delete_all_references(integration, record_type: str, actor: Actor) -> Batch:
    """Remove every target id of one entity type of an integration: set-based, one batch."""
    return changes.apply(delete_all_change_set(integration, record_type, actor)).batch


def count_references(integration, record_type: str) -> int:
    return linked_target_rows(integration, record_type).count()


def restore_batch(batch: Batch, actor: Actor) -> int:
    """Undo a batch: put back the rows it removed, take away the rows it added.

    Refused (nothing changes) when an id it would put back now belongs to another record.
    """
    applied = changes.apply(changes.Restore(batch=batch, actor=actor))
    return applied.counts[changes.NEW]


def unlinked_source_rows(integration, record_type: str):
    """Source rows whose record the target does not know: what the next sync will duplicate."""
    return (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection=integration.source, record_type=record_type)
        .filter(~Exists(target_row(integration)))
    )


def count_unlinked(integration, record_type: str) -> int:
    return unlinked_source_rows(integration, record_type).count()


# --- big changes run as background jobs (records.jobs) -----------------------------------------


def start_delete_all_job(integration, record_type: str, actor: Actor, count: int) -> Job | None:
    """A job for a delete-all above the job threshold; None when it is small enough to run now."""
    if not jobs.runs_as_job(count):
        return None
    check_entity_type(integration, record_type)
    return jobs.start_job(
        "delete_all",
        tenant=integration.tenant,
        actor=actor,
        integration=integration,
        record_type=record_type,
        total=count,
        description=delete_all_description(integration, record_type, count),
    )


def delete_all_description(integration, record_type: str, count: int) -> str:
    return (
        f"Delete all {count:,} {record_type} references of "
        f"{integration.source.name} → {integration.target.name}"
    )


def start_restore_job(batch: Batch, actor: Actor) -> Job | None:
    """A job that restores a large batch; None when it is small enough to run now."""
    if not jobs.runs_as_job(batch.row_count) or batch.is_restored:
        return None
    active = jobs.active_restore(batch)
    if active is not None:
        return active
    return jobs.start_job(
        "restore",
        tenant=batch.tenant,
        actor=actor,
        integration=batch.integration,
        record_type=batch.record_type,
        params={"batch_id": batch.pk},
        total=batch.row_count,
        description=f"Restore {batch.row_count:,} {batch.record_type} references "
        f"({batch.get_kind_display().lower()} by {batch.actor})",
    )
