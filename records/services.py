"""Writes of records and of a connection's own remote id, as the API and the pages ask.

HTML views and the JSON API both call these functions, so every rule lives here once. Custom
data is in custom_data.py, the API's values in wire.py, reads in queries.py, and every change
of a remote id goes through the engine (records.changes). Reference-level rules (one
integration's source/target pair) are in references/services.py.
"""

from __future__ import annotations

from datetime import UTC as datetime_utc

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

from common.citus.tables import uses_citus_backend
from common.errors import NotAllowed
from common.paging import FeedPosition, decode_feed_cursor, encode_feed_cursor, feed_after

from . import changes, locks, refusals
from .audit import Actor, audit_entry, mark_changed, source_connection_id, write_audit
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
        known_as=changes.known_as(holder.tenant_id, holder.record_id, besides=holder.connection_id),
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
    try:
        return _create_with_remote_id(
            tenant, record_type, connection, actor, remote_id, remote_ref, data, entries,
            source_code,
        )  # fmt: skip
    except Conflict as refused:
        # Kept after the create's transaction rolled back: a reset's first sign (refusals).
        refusal = refusals.refusal_of(refused, remote_id, remote_ref)
        refusals.keep(tenant, connection, record_type, actor, [refusal])
        raise


def _create_with_remote_id(
    tenant, record_type, connection, actor, remote_id, remote_ref, data, entries, source_code
) -> Record:
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
    try:
        return _update_record(
            record, connection, actor, data, remote_id, remote_ref, entries, if_version,
            source_code,
        )  # fmt: skip
    except Conflict as refused:
        # Kept after the PUT's transaction rolled back: a reset's first sign (refusals).
        refusal = refusals.refusal_of(refused, remote_id, remote_ref, record)
        refusals.keep(record.tenant, connection, record.record_type, actor, [refusal])
        raise


def _update_record(
    record, connection, actor, data, remote_id, remote_ref, entries, if_version, source_code
) -> list[CustomData]:
    with locks.person_waiting(record.tenant, record.record_type):
        # One writer at a time per record: concurrent PUTs apply one after the other.
        try:
            record = claim_version(record, if_version)
        except StaleEdit as stale:
            raise version_mismatch(stale.current_version, if_version) from None
        changed = False
        if record.data != data:
            _save_field(record, "data", data, connection, actor)
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


def source_code_refusal(record: Record, connection) -> NotAllowed | None:
    """Only the connection that created a record says which of its sources it came from:
    the refusal for any other (the single PUT and a batch's items), None for the creator."""
    if record.record_source == f"connection/{connection.connection_id}":
        return None
    return NotAllowed(
        "Only the connection that created a record may set its recordSource.code; this "
        f"{record.record_type} was created by {record.source.label}.",
        field="record_source.code",
    )


def _set_source_code(record: Record, code: str, connection, actor: Actor) -> None:
    if refusal := source_code_refusal(record, connection):
        raise refusal
    _save_field(record, "source_code", code, connection, actor)


# What the audit trail says a replaced field was: "Replaced the data of order x".
REPLACED_FIELD = {"data": "Replaced the data", "source_code": "Set the source code"}


def field_update_entry(record: Record, field: str, value, connection, actor: Actor) -> AuditEntry:
    """Set one field of the record (not saved) and return its audit entry, before and after."""
    before = getattr(record, field)
    setattr(record, field, value)
    return audit_entry(
        record.tenant,
        actor,
        AuditEntry.Action.RECORD_UPDATE,
        record=record,
        connection=connection,
        before={field: before},
        after={field: value},
        summary=f"{REPLACED_FIELD[field]} of {record.record_type} {record.local_id}",
    )


def _save_field(record: Record, field: str, value, connection, actor: Actor) -> None:
    """Set one field of the record, save it and audit before and after."""
    entry = field_update_entry(record, field, value, connection, actor)
    record.save(update_fields=[field])
    entry.save()


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

# On Citus the stamp is the coordinator's transaction id: Citus works out pg_current_xact_id()
# of an INSERT or UPDATE there before it sends the row to its shard (one id space however the
# shards move). So the horizon must be the coordinator's too; inside the feed's query it would
# run on the worker, among the worker's own ids. It is read first, on its own (a query without
# distributed tables runs on the coordinator). A transaction that wrote to several nodes ends
# on the coordinator just before its COMMIT PREPARED makes its rows visible on the workers (or,
# if a worker was unreachable, until Citus's recovery commits them there later); while its row
# in pg_dist_transaction (outer_xid) is kept, the horizon stays below it.
CITUS_FEED_HORIZON_SQL = (
    f"SELECT ({FEED_HORIZON_SQL}), "  # noqa: S608 (fixed SQL)
    "(SELECT min(outer_xid)::text::bigint FROM pg_dist_transaction)"
)


def feed_horizon() -> Q:
    """Only rows of transactions that have ended (see FEED_HORIZON_SQL)."""
    if not uses_citus_backend(db_connection):
        return FEED_HORIZON
    with db_connection.cursor() as cursor:
        cursor.execute(CITUS_FEED_HORIZON_SQL)
        horizon, two_phase = cursor.fetchone()
        if two_phase is not None and two_phase < horizon:
            # Mostly commits long done on the workers, which Citus forgets once a minute
            # (citus.recover_2pc_interval): forget them now rather than hold the feed back.
            # Recovery leaves those still in progress alone, and they keep holding it.
            cursor.execute("SELECT recover_prepared_transactions()")
            cursor.execute(CITUS_FEED_HORIZON_SQL)
            horizon, two_phase = cursor.fetchone()
    return Q(change_xid__lt=min(horizon, two_phase if two_phase is not None else horizon))


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
        records = records.filter(feed_horizon()).order_by("change_xid", "id")
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
