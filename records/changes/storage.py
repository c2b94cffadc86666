"""How the engine reads and writes rows: RemoteId, Batch, BatchChange, fingerprints, records.

Only the engine calls these, inside apply()'s transaction (records.models.writing). Big sets go
through COPY and a few set-based statements on PostgreSQL; the same writes as bulk ORM calls
elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection as db_connection

from common.sets import CHUNK, chunks, where_in
from records.audit import Actor, source_connection_id
from records.models import Batch, BatchChange, Record, RemoteId, RemoteIdFingerprint

from .types import NewRecord, Plan, Planned, Row, Write

# Above this many remote-id rows PostgreSQL writes go through COPY and a temporary table.
COPY_THRESHOLD = 500


def new_batch(change_set, *, row_count: int, description: str, at, **details) -> Batch:
    return Batch.objects.create(
        tenant=change_set.tenant,
        kind=change_set.kind,
        actor=str(change_set.actor),
        integration=change_set.integration,
        record_type=change_set.record_type,
        created_at=at,
        row_count=row_count,
        description=description[:300],
        details=details,
    )


ROW_FIELDS = ("pk", "record_id", "connection_id", "remote_id", "remote_ref")


def rows_by(queryset, lookup: str, values: Iterable) -> list[Row]:
    """The rows of `queryset` whose `lookup` column is one of `values` (common.sets)."""
    return [
        Row(*found)
        for rows in where_in(queryset, lookup, values)
        for found in rows.values_list(*ROW_FIELDS)
    ]


def record_of(tenant, record_id):
    if record_id is None or isinstance(record_id, NewRecord):
        return None
    return Record.objects.for_tenant(tenant).defer("data").filter(pk=record_id).first()


def other_id(tenant, record_id: int, connection_id: int) -> str | None:
    return (
        RemoteId.objects.for_tenant(tenant)
        .filter(record_id=record_id, connection_id=connection_id)
        .values_list("remote_id", flat=True)
        .first()
    )


def known_as(tenant, record_id: int, *, besides: int | None = None) -> str:
    """A record by the ids people know, for a sentence: "Shopify 5001 (#1001), Fortnox
    INV-3" (every connection's id but `besides`, the one the sentence is about); "" when it
    has none."""
    rows = (
        RemoteId.objects.for_tenant(tenant)
        .filter(record_id=record_id)
        .exclude(connection_id=besides)
        .order_by("connection__name", "remote_id")
        .values_list("connection__name", "remote_id", "remote_ref")
    )
    return ", ".join(
        f"{name} {remote_id}" + (f" ({ref})" if ref else "") for name, remote_id, ref in rows
    )


def create_records(tenant, record_type: str, count: int, actor: Actor, now) -> list[int]:
    """`count` new empty records of the type; their ids in creation order."""
    if not count:
        return []
    by = str(actor)
    source_connection = source_connection_id(tenant, actor)
    if db_connection.vendor == "postgresql" and count > COPY_THRESHOLD:
        # One statement: the rows and their local ids (32 hex, like new_hex_id) are made by
        # PostgreSQL, not built in Python and sent row by row.
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table(Record)} (tenant_id, local_id, record_type, data, "  # noqa: S608
                "created_at, last_modified, last_modified_by, record_source, "
                "source_connection_id, version) "
                "SELECT %s, replace(gen_random_uuid()::text, '-', ''), %s, '{}', %s, %s, %s, %s, "
                "%s::bigint, 1 FROM generate_series(1, %s) RETURNING id",
                [tenant.pk, record_type, now, now, by, by, source_connection, count],
            )
            return sorted(value for (value,) in cursor.fetchall())
    ids = []
    for chunk in chunks(list(range(count))):
        records = Record.objects.bulk_create(
            Record(
                tenant=tenant,
                record_type=record_type,
                created_at=now,
                last_modified=now,
                last_modified_by=by,
                record_source=by,
                source_connection_id=source_connection,
            )
            for _ in chunk
        )
        ids += [record.pk for record in records]
    return ids


def write_rows(
    tenant, record_type: str, batch: Batch, removed: list[Row], added: list[Write]
) -> None:
    """Delete the `removed` rows, insert the `added` ones (records resolved to ids), record
    both in the batch. Old rows go first, so an id freed by one change can be taken by another
    (a swap)."""
    if db_connection.vendor == "postgresql" and len(removed) + len(added) > COPY_THRESHOLD:
        _write_rows_copy(tenant, record_type, batch, removed, added)
        return
    for chunk in chunks([row.pk for row in removed]):
        RemoteId.objects.for_tenant(tenant).filter(pk__in=chunk).delete()
    RemoteId.objects.bulk_create(
        (
            RemoteId(
                tenant=tenant,
                record_id=write.record,
                connection_id=write.connection_id,
                record_type=record_type,
                remote_id=write.remote_id,
                remote_ref=write.remote_ref,
            )
            for write in added
        ),
        batch_size=CHUNK,
    )
    changes = [
        (BatchChange.Change.REMOVED, row.record_id, row.connection_id, *row.value)
        for row in removed
    ] + [(BatchChange.Change.ADDED, *write) for write in added]
    BatchChange.objects.bulk_create(
        (
            BatchChange(
                tenant=tenant,
                batch=batch,
                change=change,
                record_id=record_id,
                connection_id=connection_id,
                record_type=record_type,
                remote_id=remote_id,
                remote_ref=remote_ref,
            )
            for change, record_id, connection_id, remote_id, remote_ref in changes
        ),
        batch_size=CHUNK,
    )


def _write_rows_copy(
    tenant, record_type: str, batch: Batch, removed: list[Row], added: list[Write]
) -> None:
    """The same writes on PostgreSQL for big sets: rows go as tuples through COPY into a
    temporary table, then a few set-based statements (building half a million model
    instances was most of the time of a 100k-row import)."""
    remote_ids = RemoteId._meta.db_table
    changes = BatchChange._meta.db_table
    with db_connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE refdesk_change_rows (ord integer, change varchar(10), "
            "old_pk bigint, record_id bigint, connection_id bigint, remote_id text, "
            "remote_ref text) ON COMMIT DROP"
        )
        with cursor.copy(
            "COPY refdesk_change_rows (ord, change, old_pk, record_id, connection_id, "
            "remote_id, remote_ref) FROM STDIN"
        ) as copy:
            order = 0
            for row in removed:
                order += 1
                copy.write_row(
                    (order, "removed", row.pk, row.record_id, row.connection_id, *row.value)
                )
            for write in added:
                order += 1
                copy.write_row((order, "added", None, *write))
        cursor.execute("ANALYZE refdesk_change_rows")
        cursor.execute(
            f"DELETE FROM {remote_ids} r USING refdesk_change_rows t "  # noqa: S608
            "WHERE t.change = 'removed' AND r.id = t.old_pk AND r.tenant_id = %s",
            [tenant.pk],
        )
        cursor.execute(
            f"INSERT INTO {remote_ids} (tenant_id, record_id, connection_id, "  # noqa: S608
            "record_type, remote_id, remote_ref) SELECT %s, record_id, connection_id, %s, "
            "remote_id, remote_ref FROM refdesk_change_rows WHERE change = 'added' ORDER BY ord",
            [tenant.pk, record_type],
        )
        cursor.execute(
            f"INSERT INTO {changes} (tenant_id, batch_id, change, record_id, "  # noqa: S608
            "connection_id, record_type, remote_id, remote_ref) SELECT %s, %s, change, "
            "record_id, connection_id, %s, remote_id, remote_ref FROM refdesk_change_rows "
            "ORDER BY ord",
            [tenant.pk, batch.pk, record_type],
        )
        cursor.execute("DROP TABLE refdesk_change_rows")


def remember_remote_ids(tenant, batch: Batch, actor: Actor, *, at) -> None:
    """Keep each remote id's fingerprint (RemoteIdFingerprint) for the ids a batch added.

    One statement for any size, from the batch's "added" rows. A person vouches for what they
    write: their change sets the fingerprint anew. A sync does not: the fingerprint stays as
    first seen, and a write that puts the id on another record, or changes the ref it had, marks
    it reused (the remote system gave the id to something else after a wipe).
    """
    fingerprints = table(RemoteIdFingerprint)
    changed = (
        f"({fingerprints}.record_id <> excluded.record_id OR ({fingerprints}.remote_ref <> '' "
        f"AND {fingerprints}.remote_ref <> excluded.remote_ref))"
    )
    if actor.kind == "user":
        on_conflict = (
            "record_id = excluded.record_id, local_id = excluded.local_id, "
            "remote_ref = excluded.remote_ref, first_seen = excluded.first_seen, "
            "reused_at = NULL, reused_by = ''"
        )
        params = []
    else:
        newly = f"{fingerprints}.reused_at IS NULL AND {changed}"
        on_conflict = (
            f"reused_at = CASE WHEN {newly} THEN excluded.first_seen "
            f"ELSE {fingerprints}.reused_at END, "
            f"reused_by = CASE WHEN {newly} THEN %s ELSE {fingerprints}.reused_by END, "
            f"remote_ref = CASE WHEN {fingerprints}.remote_ref = '' THEN excluded.remote_ref "
            f"ELSE {fingerprints}.remote_ref END"
        )
        params = [str(actor)]
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {fingerprints} (tenant_id, connection_id, record_type, "  # noqa: S608
            "remote_id, record_id, local_id, remote_ref, first_seen, reused_by, "
            "acknowledged_by) "
            "SELECT bc.tenant_id, bc.connection_id, bc.record_type, bc.remote_id, "
            "bc.record_id, rec.local_id, bc.remote_ref, %s, '', '' "
            f"FROM {table(BatchChange)} bc JOIN {table(Record)} rec "
            "ON rec.tenant_id = bc.tenant_id AND rec.id = bc.record_id "
            "WHERE bc.tenant_id = %s AND bc.batch_id = %s AND bc.change = %s "
            "ON CONFLICT (tenant_id, connection_id, record_type, remote_id) "
            f"DO UPDATE SET {on_conflict}",
            [at, tenant.pk, batch.pk, BatchChange.Change.ADDED, *params],
        )


def table(model) -> str:
    return db_connection.ops.quote_name(model._meta.db_table)


def row_changes(plan: Plan, accepted: list[Planned], record_of: dict) -> tuple[list, list]:
    """The rows to delete and the ids to insert (new records resolved to their ids)."""
    removed, added = [], []
    for line in accepted:
        for write in line.writes:
            here = plan.here(write.record, write.connection_id)
            if here is not None and here.value == write.value:
                continue  # this side stays as it is
            if here is not None:
                removed.append(here)
            if write.value is not None:
                added.append(write._replace(record=record_of.get(write.record, write.record)))
    return removed, added
