"""Writes of records and of a connection's own remote id, as the API and the pages ask.

HTML views and the JSON API both call these functions, so every rule lives here once. Custom
data is in custom_data.py, the API's values in wire.py, reads in queries.py, and every change
of a remote id goes through the engine (records.changes). Reference-level rules (one
integration's source/target pair) are in references/services.py.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC as datetime_utc
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from common.errors import InvalidValue, NotAllowed

from . import changes, locks
from .audit import Actor, mark_changed, source_connection_id, write_audit
from .changes import messages
from .custom_data import (
    check_connection_may_write,
    replace_cleaned,
    set_custom_data,
    upsert_cleaned,
)
from .errors import Conflict, StaleEdit
from .models import AuditEntry, Batch, CustomData, Record, RemoteId
from .queries import (
    records_with_ids_and_custom_data,
)
from .validation import (
    clean_record_type,
    clean_source_code,
)
from .versioning import claim_version, version_mismatch
from .wire import clean_own_remote_id, clean_record_data, parse_custom_data_entries

# update_record's source_code when the request does not set it: the code stays as it is.
UNCHANGED = object()


def create_record(
    tenant, record_type: str, actor: Actor, *, data: dict | None = None, source_code: str = ""
) -> Record:
    """A new record; `actor` is its recordSource (with `source_code` if a connection)."""
    return Record.objects.create(
        tenant=tenant,
        record_type=record_type,
        data=data or {},
        last_modified_by=str(actor),
        record_source=str(actor),
        source_connection_id=source_connection_id(tenant, actor),
        source_code=source_code if actor.kind == "connection" else "",
    )


def remote_id_holder(tenant, connection, record_type: str, remote_id: str) -> RemoteId | None:
    """The row that holds `remote_id` in `connection` for `record_type`, if any."""
    return (
        RemoteId.objects.for_tenant(tenant)
        .select_related("record", "connection")
        .filter(connection=connection, record_type=record_type, remote_id=remote_id)
        .first()
    )


# --- custom data ------------------------------------------------------------------------


def conflict_for_remote_id(holder: RemoteId, *, field: str, label: str = "Id") -> Conflict:
    return messages.id_of_another_record(
        holder.remote_id,
        holder.record.record_type,
        holder.record,
        holder.connection.name,
        field=field,
        label=label,
    )


# --- API connections: records by remote id, writes, delta sync -------------------------
#
# The JSON API (records/api.py) calls these; a connection acts on its own tenant, may read
# everything there, and writes only its own remote id and its own or unscoped custom data.


def refuse_taken_remote_id(tenant, connection, record_type: str, remote_id, record=None):
    """Conflict (409) naming the record that holds `remote_id`, unless that is `record`.

    A read-only pre-check for a create, before anything is written; the change engine checks
    the same rule again when it writes (and a race ends in the same message).
    """
    if remote_id is None:
        return
    holder = remote_id_holder(tenant, connection, record_type, remote_id)
    if holder is not None and (record is None or holder.record_id != record.pk):
        raise conflict_for_remote_id(holder, field="remote_id", label="Remote id")


def _own_id_change_set(record: Record, connection, remote_id, remote_ref, actor, **options):
    """The change set of an API connection setting (or with None removing) its own id."""
    return changes.ChangeSet(
        tenant=record.tenant,
        record_type=record.record_type,
        actor=actor,
        kind=Batch.Kind.API,
        changes=[
            changes.Change(
                changes.Action.SET_ID,
                record_id=record.pk,
                connection_id=connection.pk,
                remote_id=remote_id,
                remote_ref=remote_ref or "",
            )
        ],
        strict=True,
        audit_action=AuditEntry.Action.REMOTE_ID_SET,
        **options,
    )


@transaction.atomic
def upsert_custom_data_for_connection(record: Record, entries: dict, connection, actor: Actor):
    """The API's POST .../customdata: update where the key exists, else create."""
    parsed = parse_custom_data_entries(record.tenant, entries)
    check_connection_may_write(parsed, connection)
    set_custom_data(record, parsed, actor, writer=connection)


def create_record_with_remote_id(
    tenant,
    record_type: str,
    connection,
    actor: Actor,
    *,
    remote_id=None,
    remote_ref=None,
    data=None,
    custom_data: dict | None = None,
    source_code=None,
) -> Record:
    """A new record, known to `connection` by `remote_id` (if given), with its custom data.

    Its recordSource is `actor` (the connection), with `source_code` naming which source in
    the connection's system it came from (optional).
    All or nothing, at version 1; a remote id another record holds is a Conflict naming it,
    also when two creates race for the same id (exactly one wins).
    """
    record_type = clean_record_type(record_type)
    data = clean_record_data(data)
    remote_id, remote_ref = clean_own_remote_id(remote_id, remote_ref)
    source_code = clean_source_code(source_code)
    entries = parse_custom_data_entries(tenant, custom_data or {})
    check_connection_may_write(entries, connection)
    refuse_taken_remote_id(tenant, connection, record_type, remote_id)
    with locks.person_waiting(tenant, record_type):
        record = create_record(tenant, record_type, actor, data=data, source_code=source_code)
        after = {"data": data}
        if record.source_code:
            after["source_code"] = record.source_code
        write_audit(
            tenant,
            actor,
            AuditEntry.Action.RECORD_CREATE,
            record=record,
            connection=connection,
            after=after,
            summary=f"Created {record_type} {record.local_id}",
        )
        if remote_id is not None:
            changes.apply(
                _own_id_change_set(
                    record,
                    connection,
                    remote_id,
                    remote_ref,
                    actor,
                    new_record_ids=frozenset({record.pk}),
                )
            )
        if entries:
            upsert_cleaned(record, entries, actor)
    return Record.objects.for_tenant(tenant).get(pk=record.pk)


def update_record(
    record: Record,
    connection,
    actor: Actor,
    *,
    data,
    remote_id,
    remote_ref,
    custom_data: dict,
    if_version: int | None = None,
    source_code=UNCHANGED,
) -> list[CustomData]:
    """The API's PUT: replace data, the connection's remote id/ref and the custom data it may
    write (its own and unscoped entries; those not sent are deleted), and set the record's
    source code unless it is UNCHANGED.

    Entries scoped to other connections are kept and returned, so the caller can say so.
    One version bump for the whole write, and none when nothing changed (an unchanged PUT is
    not an edit). With `if_version` (the API's If-Match) the write happens only if the record
    is still at that version, so a client never overwrites a change it has not seen. A record
    a bulk change is writing is BulkChangeRunning after a few seconds, not a wait for the job.
    """
    data = clean_record_data(data)
    remote_id, remote_ref = clean_own_remote_id(remote_id, remote_ref)
    if source_code is not UNCHANGED:
        source_code = clean_source_code(source_code)
    entries = parse_custom_data_entries(record.tenant, custom_data)
    check_connection_may_write(entries, connection)
    with locks.person_waiting(record.tenant, record.record_type):
        # One writer at a time per record: concurrent PUTs apply one after the other.
        try:
            record = claim_version(record, if_version)
        except StaleEdit as stale:
            raise version_mismatch(stale.current_version, if_version) from None
        changed = False
        if record.data != data:
            _save_field(record, "data", data, connection, actor, "Replaced the data")
            changed = True
        if source_code is not UNCHANGED and source_code != record.source_code:
            _set_source_code(record, source_code, connection, actor)
            changed = True
        kept, custom_changed = replace_cleaned(record, entries, actor, connection)
        # The engine marks the record changed when it writes the id; otherwise we do it here.
        applied = changes.apply(
            _own_id_change_set(record, connection, remote_id, remote_ref, actor)
        )
        if (changed or custom_changed) and applied.batch is None:
            mark_changed(record.tenant, [record.pk], actor)
    return kept


def _set_source_code(record: Record, code: str, connection, actor: Actor) -> None:
    """Only the connection that created a record says which of its sources it came from."""
    if record.record_source != f"connection/{connection.connection_id}":
        raise NotAllowed(
            "Only the connection that created a record may set its recordSource.code; this "
            f"{record.record_type} was created by {record.source.label}.",
            field="record_source.code",
        )
    _save_field(record, "source_code", code, connection, actor, "Set the source code")


def _save_field(record: Record, field: str, value, connection, actor: Actor, what: str) -> None:
    """Set one field of the record, save it and audit before and after ("<what> of order x")."""
    before = getattr(record, field)
    setattr(record, field, value)
    record.save(update_fields=[field])
    write_audit(
        record.tenant,
        actor,
        AuditEntry.Action.RECORD_UPDATE,
        record=record,
        connection=connection,
        before={field: before},
        after={field: value},
        summary=f"{what} of {record.record_type} {record.local_id}",
    )


def encode_cursor(last_modified, local_id: str) -> str:
    """Opaque to clients: base64 of the last record's (lastModified, localId)."""
    raw = f"{last_modified.astimezone(datetime_utc).isoformat()}|{local_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, local_id = raw.split("|")
        moment = datetime.fromisoformat(moment)
    except (ValueError, UnicodeDecodeError):
        raise InvalidValue("This cursor is not one the API gave out.", field="cursor") from None
    if moment.tzinfo is None or not re.fullmatch(r"[0-9a-f]{32}", local_id):
        raise InvalidValue("This cursor is not one the API gave out.", field="cursor")
    return moment, local_id


def changed_records(tenant, record_type: str, *, since=None, cursor: str | None = None, limit=100):
    """Records changed at or after `since`, oldest first, after `cursor`: (records, has_more).

    Keyset pagination on (last_modified, local_id), a unique order, so paging while others
    write skips nothing and repeats nothing; a record written meanwhile gets a newer
    last_modified and so comes again later, which is what a delta sync wants.
    """
    records = records_with_ids_and_custom_data(tenant).filter(record_type=record_type)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=datetime_utc)
        records = records.filter(last_modified__gte=since)
    if cursor:
        moment, local_id = decode_cursor(cursor)
        # The redundant >= lets the index range-scan; the OR is the tie-break.
        records = records.filter(last_modified__gte=moment).filter(
            Q(last_modified__gt=moment) | Q(last_modified=moment, local_id__gt=local_id)
        )
    page = list(records.order_by("last_modified", "local_id")[: limit + 1])
    return page[:limit], len(page) > limit
