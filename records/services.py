"""Rules for records, their remote ids, custom data and the audit trail.

HTML views and the JSON API both call these functions, so every rule lives here once.
Reference-level rules (one integration's source/target pair) are in references/services.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC as datetime_utc

from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

from common.errors import DomainError, InvalidValue, NotAllowed
from common.paging import FeedPosition, decode_feed_cursor, encode_feed_cursor, feed_after
from common.prepared import PreparedQuery
from integrations.models import Connection, Tenant

from . import changes, locks
from .audit import Actor, mark_changed, source_connection_id, touch_record, write_audit
from .errors import Conflict, StaleEdit, VersionMismatch
from .models import AuditEntry, Batch, CustomData, Record, RemoteId
from .queries import custom_data_rows, remote_id_rows
from .validation import (
    SELF_MADE_MODULE_PREFIX,
    check_storable_json,
    clean_custom_key,
    clean_module_id,
    clean_record_type,
    clean_remote_id,
    clean_remote_ref,
    clean_source_code,
    parse_custom_value,
)

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


def _upsert_custom_data(record: Record, cleaned: list[CustomDataInput], actor: Actor):
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
    like every edit (records.changes.claim_version). A record a bulk change is writing is
    BulkChangeRunning after a few seconds, not a wait for the whole job.
    """
    with locks.person_waiting(record.tenant, record.record_type):
        cleaned = _cleaned_for_writer(record, entries, writer)
        if version is not None:
            changes.claim_version(record, version)
        saved, changed = _upsert_custom_data(record, cleaned, actor)
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


def _replace_custom_data(record: Record, cleaned: list[CustomDataInput], actor, writer):
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
    _, upserted = _upsert_custom_data(record, cleaned, actor)
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
    kept, changed = _replace_custom_data(
        record, _cleaned_for_writer(record, entries, writer), actor, writer
    )
    if changed:
        touch_record(record, actor)
    return kept


def conflict_for_remote_id(holder: RemoteId, *, field: str, label: str = "Id") -> Conflict:
    return Conflict(
        f"{label} {holder.remote_id} already belongs to {holder.record.record_type} "
        f"{holder.record.local_id} in {holder.connection.name}.",
        field=field,
        holder=holder.record,
    )


# --- API connections: records by remote id, writes, delta sync -------------------------
#
# The JSON API (records/api.py) calls these; a connection acts on its own tenant, may read
# everything there, and writes only its own remote id and its own or unscoped custom data.


def records_with_ids_and_custom_data(tenant):
    """Records of a tenant with what the API shows, in one query: the remote ids and custom
    data as JSON arrays (records.queries `remote_id_rows`, `custom_data_rows`), and the
    connection that created each record (for recordSource) joined."""
    return (
        Record.objects.for_tenant(tenant)
        .select_related("source_connection__connector")
        .annotate(remote_id_rows=remote_id_rows(tenant), custom_data_rows=custom_data_rows(tenant))
    )


# The API's two reads of one record, compiled once per process (common.prepared): compiling
# this query cost more than running it.
record_by_local_id = PreparedQuery(
    lambda tenant_id, record_type, local_id: records_with_ids_and_custom_data(
        Tenant(pk=tenant_id)
    ).filter(record_type=record_type, local_id=local_id)[:1]
)
record_by_remote_id = PreparedQuery(
    lambda tenant_id, connection_id, record_type, remote_id: records_with_ids_and_custom_data(
        Tenant(pk=tenant_id)
    ).filter(
        record_type=record_type,
        # All four columns of remoteid_unique_per_connection_and_type, so the lookup is one
        # unique-index probe (without the tenant and type it scans the connection's rows:
        # 75 ms at a million references instead of 0.1 ms).
        remote_ids__tenant_id=tenant_id,
        remote_ids__connection_id=connection_id,
        remote_ids__record_type=record_type,
        remote_ids__remote_id=remote_id,
    )[:1]
)


def clean_record_data(value, *, field: str = "data") -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue("Data must be a JSON object.", field=field)
    check_storable_json(value, field=field)
    return value


def clean_own_remote_id(remote_id, remote_ref) -> tuple[str | None, str]:
    """A connection's (id, ref): id None means "none"; a ref needs an id."""
    ref = clean_remote_ref(remote_ref, field="remote_ref", label="Remote ref")
    check_storable_json(ref, field="remote_ref")
    if remote_id is None:
        if ref:
            raise InvalidValue("A remote ref needs a remote id.", field="remote_ref")
        return None, ""
    remote_id = clean_remote_id(remote_id, field="remote_id", label="Remote id")
    check_storable_json(remote_id, field="remote_id")
    return remote_id, ref


def remote_id_lookup_value(remote_id) -> str:
    """The remote id a by-remote-id lookup asks for, validated like one that is written."""
    remote_id = clean_remote_id(remote_id, field="remote_id", label="Remote id")
    check_storable_json(remote_id, field="remote_id")
    return remote_id


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


def set_own_remote_id(record: Record, connection, remote_id, remote_ref, actor: Actor) -> bool:
    """Set (or, with None, remove) the id `connection` knows `record` by; True if it changed.

    A connection sets only its own id: the row is always (record, connection). An id that
    another record of this type holds in this connection is a Conflict naming that record,
    also when a concurrent writer wins the race (the unique constraint decides).
    """
    remote_id, remote_ref = clean_own_remote_id(remote_id, remote_ref)
    applied = changes.apply(_own_id_change_set(record, connection, remote_id, remote_ref, actor))
    return applied.batch is not None


def parse_custom_data_entries(tenant, entries: dict) -> list[CustomDataInput]:
    """Entries as the API sends them: {"connectionId|moduleId|key": {type, value, ...}}.

    Errors name the entry: field `custom_data.<name>.<part>`.
    """
    connections: dict[str, Connection | None] = {"": None}
    parsed = []
    for name, body in entries.items():
        field = f"custom_data.{name}"
        parts = name.split("|")
        if len(parts) != 3:
            raise InvalidValue(
                "Custom data names are connectionId|moduleId|key (connectionId may be empty).",
                field=field,
            )
        connection_id, module_id, key = parts
        for part, given in (
            ("connection", body.get("connectionId")),
            ("module_id", body.get("moduleId")),
            ("key", body.get("key")),
        ):
            expected = {"connection": connection_id, "module_id": module_id, "key": key}[part]
            if given is not None and given != expected:
                raise InvalidValue(
                    f"Does not match the entry's name {name}.", field=f"{field}.{part}"
                )
        if connection_id not in connections:
            # Another tenant's connection is as unknown as one that does not exist.
            connections[connection_id] = (
                Connection.objects.for_tenant(tenant).filter(connection_id=connection_id).first()
                if len(connection_id) <= 32 and "\x00" not in connection_id
                else None
            )
        connection = connections[connection_id]
        if connection is None and connection_id:
            raise InvalidValue(f"Unknown connection {connection_id}.", field=f"{field}.connection")
        value = body.get("value")
        if body.get("type") == "json":
            # API values are native JSON: a string is a JSON string, not JSON text to parse.
            value = json.dumps(value)
        entry = CustomDataInput(module_id, key, body.get("type"), value, connection)
        try:
            check_storable_json(body.get("value"), field="value")
            parsed.append(clean_custom_data_input(entry, tenant))
        except DomainError as error:
            error.field = f"{field}.{error.field}" if error.field else field
            raise
    return parsed


def _check_custom_data_writer(entries: list[CustomDataInput], writer: Connection) -> None:
    """403 on the first entry scoped to another connection, naming it."""
    for entry in entries:
        try:
            _check_writer(entry, writer)
        except NotAllowed as error:
            error.field = f"custom_data.{entry.full_key}.connection"
            raise


@transaction.atomic
def upsert_custom_data_for_connection(record: Record, entries: dict, connection, actor: Actor):
    """The API's POST .../customdata: update where the key exists, else create."""
    parsed = parse_custom_data_entries(record.tenant, entries)
    _check_custom_data_writer(parsed, connection)
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
    _check_custom_data_writer(entries, connection)
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
            _upsert_custom_data(record, entries, actor)
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
    _check_custom_data_writer(entries, connection)
    with locks.person_waiting(record.tenant, record.record_type):
        # One writer at a time per record: concurrent PUTs apply one after the other.
        try:
            record = changes.claim_version(record, if_version)
        except StaleEdit as stale:
            raise VersionMismatch(
                f"The record changed since you read it: it is at version {stale.current_version}, "
                f"If-Match said {if_version}. Nothing was written; GET it again and reapply "
                "your change.",
                current_version=stale.current_version,
            ) from None
        changed = False
        if record.data != data:
            _save_field(record, "data", data, connection, actor, "Replaced the data")
            changed = True
        if source_code is not UNCHANGED and source_code != record.source_code:
            _set_source_code(record, source_code, connection, actor)
            changed = True
        kept, custom_changed = _replace_custom_data(record, entries, actor, connection)
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


# The feed on PostgreSQL hands out what transactions that have ended wrote: those below the
# oldest transaction still running in this database. The query's own snapshot says which are
# running (pg_snapshot_xip); those that pg_stat_activity shows running in another database
# cannot write here and are left out, so a long transaction elsewhere on the server (another
# app's, a backup) does not hold the feed back. One not identified (its session just ended,
# or its details are hidden from this user) counts: the horizon can only be lower, never
# past a transaction that may still commit here. Without any: the snapshot's xmax.
# A transaction sees its own writes as ended (a test runs in one; the API reads the feed
# outside any writing transaction). One condition, so the index scan stops at the horizon
# instead of walking a running bulk job's rows.
FEED_HORIZON_SQL = """
SELECT greatest(
    coalesce(min(running.xid), pg_snapshot_xmax(pg_current_snapshot()))::text::bigint,
    pg_current_xact_id_if_assigned()::text::bigint + 1
)
FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
WHERE (running.xid::text::bigint & 4294967295) NOT IN (
    SELECT backend_xid::text::bigint FROM pg_stat_activity
    WHERE datname IS DISTINCT FROM current_database() AND backend_xid IS NOT NULL
)
"""
FEED_HORIZON = Q(change_xid__lt=RawSQL(FEED_HORIZON_SQL, []))  # noqa: S611 (fixed SQL)


def feed_is_by_transaction() -> bool:
    return db_connection.vendor == "postgresql"


def changed_records(tenant, record_type: str, *, since=None, cursor: str | None = None, limit=100):
    """Records changed at or after `since`, after `cursor`, in the feed's order: (records,
    has_more, next cursor). The cursor is the client's when the page is empty.

    On PostgreSQL the order is (change_xid, id), on record_feed_idx, and only rows of ended
    transactions are handed out (FEED_HORIZON), so a transaction that commits later never
    lands behind a cursor already given: the feed is gapless whatever order writers commit
    in. Elsewhere (SQLite: one writer) it is (last_modified, local_id). Either is a unique
    order, so paging while others write skips nothing and repeats nothing; a record written
    meanwhile comes again later, which is what a delta sync wants.
    """
    by_transaction = feed_is_by_transaction()
    records = records_with_ids_and_custom_data(tenant).filter(record_type=record_type)
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=datetime_utc)
        records = records.filter(last_modified__gte=since)
    if cursor:
        records = feed_after(records, decode_feed_cursor(cursor), by_transaction=by_transaction)
    if by_transaction:
        records = records.filter(FEED_HORIZON).order_by("change_xid", "id")
    else:
        records = records.order_by("last_modified", "local_id")
    page = list(records[: limit + 1])
    if not page:
        return [], False, cursor
    last = page[:limit][-1]
    position = (
        FeedPosition(transaction=last.change_xid, row_id=last.pk)
        if by_transaction
        else FeedPosition(modified=last.last_modified, local_id=last.local_id)
    )
    return page[:limit], len(page) > limit, encode_feed_cursor(position)
