"""Optimistic locking of records: a change made on an older version is refused as stale.

The References row, custom-data edits and the API's If-Match all end in `claim_version` or in
the engine's version check, and say the same thing (`stale_edit`).
"""

from __future__ import annotations

from django.utils import timezone

from .errors import StaleEdit, VersionMismatch
from .history import display_name
from .models import Record, RemoteId


def reference_snapshot(integration, record: Record) -> dict:
    """A reference (source and target id and ref of one record) as history and errors show it."""
    rows = {
        row.connection_id: row
        for row in RemoteId.objects.for_tenant(integration.tenant).filter(
            record=record, connection__in=[integration.source_id, integration.target_id]
        )
    }
    source, target = rows.get(integration.source_id), rows.get(integration.target_id)
    return {
        "source_id": source.remote_id if source else None,
        "source_ref": source.remote_ref if source else None,
        "target_id": target.remote_id if target else None,
        "target_ref": target.remote_ref if target else None,
    }


def stale_edit(record: Record, current: dict) -> StaleEdit:
    """The one stale-edit error: the References row, custom data and the API (412) use it."""
    when = timezone.localtime(record.last_modified).strftime("%Y-%m-%d %H:%M:%S")
    return StaleEdit(
        f"Changed by {display_name(record.tenant_id, record.last_modified_by)} at {when} "
        "since you opened it. "
        "Your edit was not saved; check the current values and try again.",
        changed_by=record.last_modified_by,
        changed_at=record.last_modified,
        current=current,
        current_version=record.version,
    )


def stale_reference_edit(integration, record: Record) -> StaleEdit:
    """A stale edit of a reference: the error carries the reference as it is now."""
    snapshot = reference_snapshot(integration, record) if integration is not None else {}
    return stale_edit(record, {**snapshot, "version": record.version})


def claim_version(record: Record, version: int | None) -> Record:
    """Lock the record and check it is still at `version` (None: any); StaleEdit if not.

    The one optimistic-locking check: inline reference edits (through the change set's
    versions), custom-data edits and the API's If-Match all end here.
    """
    current = Record.objects.for_tenant(record.tenant).select_for_update().get(pk=record.pk)
    if version is not None and current.version != version:
        raise stale_edit(current, {"version": current.version})
    return current


def version_mismatch(current_version: int, asked: int) -> VersionMismatch:
    """The API's 412: If-Match named a version the record is no longer at."""
    return VersionMismatch(
        f"The record changed since you read it: it is at version {current_version}, "
        f"If-Match said {asked}. Nothing was written; GET it again and reapply your change.",
        current_version=current_version,
    )
