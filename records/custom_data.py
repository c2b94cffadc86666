"""Custom data of records: the entries a connection or a person keeps on a record.

The References and Records pages (forms), the JSON API and the demo write through these.
A connection writes only its own connection-scoped and the unscoped entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from common.errors import InvalidValue, NotAllowed
from integrations.models import Connection

from . import locks
from .audit import Actor, touch_record, write_audit
from .models import AuditEntry, CustomData, Record
from .validation import (
    SELF_MADE_MODULE_PREFIX,
    clean_custom_key,
    clean_module_id,
    parse_custom_value,
)
from .versioning import claim_version


@dataclass(frozen=True)
class CustomDataInput:
    """One entry to write. `connection` None means not connection-scoped."""

    module_id: str
    key: str
    type: str
    value: object
    connection: Connection | None = None
    # True once clean_custom_data_input has run: cleaning twice would parse a json value
    # twice (the JSON string "\"a\"" is the value "a", and "a" itself is not JSON).
    cleaned: bool = False

    @property
    def full_key(self) -> str:
        prefix = self.connection.connection_id if self.connection else ""
        return f"{prefix}|{self.module_id}|{self.key}"


def clean_custom_data_input(entry: CustomDataInput, tenant) -> CustomDataInput:
    """Validate an entry and return it with trimmed names and the parsed value."""
    if entry.connection is not None and entry.connection.tenant_id != tenant.pk:
        raise InvalidValue("Unknown connection.", field="connection")
    if entry.cleaned:
        return entry
    return CustomDataInput(
        module_id=clean_module_id(entry.module_id),
        key=clean_custom_key(entry.key),
        type=entry.type,
        value=parse_custom_value(entry.type, entry.value),
        connection=entry.connection,
        cleaned=True,
    )


def _check_writer(entry: CustomDataInput, writer: Connection | None) -> None:
    """An API connection writes only its own or unscoped custom data."""
    if writer is not None and entry.connection is not None and entry.connection.pk != writer.pk:
        raise NotAllowed(
            f"Connection {writer.connection_id} may not write custom data scoped to "
            f"connection {entry.connection.connection_id}.",
            field="connection",
        )


def module_exists(tenant, module_id: str) -> bool:
    return CustomData.objects.for_tenant(tenant).filter(module_id=module_id).exists()


def require_self_made_module(tenant, module_id: str) -> None:
    """People may add entries to a new module only if it is self-made (starts with `x-`)."""
    if not module_id.startswith(SELF_MADE_MODULE_PREFIX) and not module_exists(tenant, module_id):
        raise InvalidValue(
            f"New modules you make must start with {SELF_MADE_MODULE_PREFIX} "
            f"(e.g. {SELF_MADE_MODULE_PREFIX}{module_id}).",
            field="module_id",
        )


def _custom_data_lookup(record: Record, entry: CustomDataInput):
    return CustomData.objects.for_tenant(record.tenant).filter(
        record=record, connection=entry.connection, module_id=entry.module_id, key=entry.key
    )


def _custom_data_snapshot(item: CustomData | CustomDataInput | None) -> dict | None:
    if item is None:
        return None
    return {"key": item.full_key, "type": item.type, "value": item.value}


def upsert_cleaned(record: Record, cleaned: list[CustomDataInput], actor: Actor):
    """Update where the key exists, else create; audit each change. Returns (saved, changed)."""
    saved = []
    changed = False
    for entry in cleaned:
        existing = _custom_data_lookup(record, entry).select_for_update().first()
        if existing is not None and (existing.type, existing.value) == (entry.type, entry.value):
            saved.append(existing)
            continue
        changed = True
        before = _custom_data_snapshot(existing)
        if existing is None:
            try:
                with transaction.atomic():
                    existing = CustomData.objects.create(
                        tenant=record.tenant,
                        record=record,
                        connection=entry.connection,
                        module_id=entry.module_id,
                        key=entry.key,
                        type=entry.type,
                        value=entry.value,
                    )
            except IntegrityError:
                # Someone created the same key a moment ago: update theirs instead.
                existing = _custom_data_lookup(record, entry).select_for_update().get()
        existing.type, existing.value = entry.type, entry.value
        existing.save(update_fields=["type", "value"])
        write_audit(
            record.tenant,
            actor,
            AuditEntry.Action.CUSTOM_DATA_SET,
            record=record,
            connection=entry.connection,
            before=before,
            after=_custom_data_snapshot(existing),
            summary=f"Set {existing.full_key}",
        )
        saved.append(existing)
    return saved, changed


def _cleaned_for_writer(record, entries, writer) -> list[CustomDataInput]:
    cleaned = [clean_custom_data_input(entry, record.tenant) for entry in entries]
    for entry in cleaned:
        _check_writer(entry, writer)
    return cleaned


def set_custom_data(
    record: Record,
    entries: Iterable[CustomDataInput],
    actor: Actor,
    *,
    writer: Connection | None = None,
    version: int | None = None,
) -> list[CustomData]:
    """Upsert entries: update where the key exists, else create. All or nothing.

    With `version` (the record's version the form was opened on) a stale edit is refused,
    like every edit (records.versioning.claim_version). A record a bulk change is writing is
    BulkChangeRunning after a few seconds, not a wait for the whole job.
    """
    with locks.person_waiting(record.tenant, record.record_type):
        cleaned = _cleaned_for_writer(record, entries, writer)
        if version is not None:
            claim_version(record, version)
        saved, changed = upsert_cleaned(record, cleaned, actor)
        if changed:
            touch_record(record, actor)
    return saved


def _delete_custom_data_item(item: CustomData, actor: Actor, writer: Connection | None) -> None:
    if writer is not None and item.connection_id not in (None, writer.pk):
        raise NotAllowed("This connection may not delete another connection's custom data.")
    before = _custom_data_snapshot(item)
    record = item.record
    item.delete()
    write_audit(
        record.tenant,
        actor,
        AuditEntry.Action.CUSTOM_DATA_DELETE,
        record=record,
        connection=item.connection,
        before=before,
        summary=f"Deleted {before['key']}",
    )


@transaction.atomic
def delete_custom_data(item: CustomData, actor: Actor, *, writer: Connection | None = None):
    _delete_custom_data_item(item, actor, writer)
    touch_record(item.record, actor)


def replace_cleaned(record: Record, cleaned: list[CustomDataInput], actor, writer):
    """Make the writable custom data exactly `cleaned`. Returns (kept, changed): the entries
    kept because `writer` may not write them, and whether anything changed."""
    current = list(
        CustomData.objects.for_tenant(record.tenant)
        .filter(record=record)
        .select_related("connection")
    )
    wanted = {entry.full_key for entry in cleaned}
    kept = []
    changed = False
    for item in current:
        writable = writer is None or item.connection_id in (None, writer.pk)
        if not writable:
            kept.append(item)
        elif item.full_key not in wanted:
            _delete_custom_data_item(item, actor, writer)
            changed = True
    _, upserted = upsert_cleaned(record, cleaned, actor)
    return kept, changed or upserted


@transaction.atomic
def replace_custom_data(
    record: Record,
    entries: Iterable[CustomDataInput],
    actor: Actor,
    *,
    writer: Connection | None = None,
) -> list[CustomData]:
    """Make the writable custom data exactly `entries`; return entries kept because not writable.

    A connection may replace its own connection-scoped and the unscoped entries; entries scoped
    to other connections are never touched by it (they are returned so callers can say so).
    """
    kept, changed = replace_cleaned(
        record, _cleaned_for_writer(record, entries, writer), actor, writer
    )
    if changed:
        touch_record(record, actor)
    return kept


def check_connection_may_write(entries: list[CustomDataInput], writer: Connection) -> None:
    """403 on the first entry scoped to another connection, naming it."""
    for entry in entries:
        try:
            _check_writer(entry, writer)
        except NotAllowed as error:
            error.field = f"custom_data.{entry.full_key}.connection"
            raise
