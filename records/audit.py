"""Who changed what: the actor, the audit trail, and marking records changed.

Every writer (the change engine for remote ids, the services for data and custom data) records
its changes through these helpers, so an audit entry and a "record changed" look the same
whoever wrote them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection as db_connection
from django.db.models import F, JSONField
from django.utils import timezone

from integrations.models import Connection

from .models import AuditEntry, CurrentTransactionId, Record

# Above this many records "mark changed" joins an ordered id list instead of `IN (...)`.
ORDERED_TOUCH_THRESHOLD = 2000


@dataclass(frozen=True)
class Actor:
    """Who makes a change, written everywhere as `{type}/{id}`."""

    kind: str  # "user", "connection" or "system"
    id: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.id}"

    @classmethod
    def for_user(cls, user) -> Actor:
        return cls("user", user.get_username())

    @classmethod
    def for_connection(cls, connection: Connection) -> Actor:
        return cls("connection", connection.connection_id)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", name)

    @classmethod
    def parse(cls, value: str) -> Actor:
        kind, _, ident = value.partition("/")
        return cls(kind, ident)


def source_connection_id(tenant, actor: Actor) -> int | None:
    """The connection a record `actor` creates is sourced from (recordSource), if a connection
    of the tenant: the pk behind its connection_id. None for users and the system."""
    if actor.kind != "connection":
        return None
    return (
        Connection.objects.for_tenant(tenant)
        .filter(connection_id=actor.id)
        .values_list("pk", flat=True)
        .first()
    )


def audit_entry(
    tenant,
    actor: Actor | str,
    action: str,
    *,
    record: Record | None = None,
    record_type: str = "",
    connection=None,
    integration=None,
    batch=None,
    before=None,
    after=None,
    summary: str = "",
    at=None,
) -> AuditEntry:
    """An unsaved audit entry (bulk writers save many at once)."""
    values = {
        "id": None,
        "tenant_id": tenant.pk,
        "created_at": at or timezone.now(),
        "actor": str(actor),
        "action": action,
        "record_id": record.pk if record else None,
        "local_id": record.local_id if record else "",
        "record_type": record.record_type if record else record_type,
        "connection_id": connection.pk if connection else None,
        "integration_id": integration.pk if integration else None,
        "batch_id": batch.pk if batch else None,
        "before": before,
        "after": after,
        "summary": summary[:500],
    }
    # Positional values and the related objects put in its cache, as assigning them would:
    # a third less time than keyword arguments (a batch write builds 500 of these).
    entry = AuditEntry(*(values[name] for name in _ATTNAMES))
    for field, value in zip(
        _RELATED, (tenant, record, connection, integration, batch), strict=True
    ):
        if value is not None:
            field.set_cached_value(entry, value)
    return entry


_ATTNAMES = [field.attname for field in AuditEntry._meta.concrete_fields]
_RELATED = [
    AuditEntry._meta.get_field(name)
    for name in ("tenant", "record", "connection", "integration", "batch")
]


# Fewer entries than this are one INSERT; more are one COPY on PostgreSQL (save_entries).
COPY_AT_LEAST = 50
# The columns an audit entry is copied with (all but its id).
COLUMNS = [field for field in AuditEntry._meta.concrete_fields if not field.primary_key]


def save_entries(entries: list[AuditEntry]) -> None:
    """Save many unsaved audit entries (their pks stay unset).

    On PostgreSQL many are one COPY: an INSERT of 500 entries carries 6,500 parameters, which
    PostgreSQL parsed and planned for longer than it took to write the rows (240 ms against
    55 ms for 500 on a loaded machine; bench/README.md). Elsewhere, or for a few, bulk_create.
    """
    if db_connection.vendor != "postgresql" or len(entries) < COPY_AT_LEAST:
        AuditEntry.objects.bulk_create(entries)
        return
    table = db_connection.ops.quote_name(AuditEntry._meta.db_table)
    columns = ", ".join(db_connection.ops.quote_name(field.column) for field in COLUMNS)
    with (
        db_connection.cursor() as cursor,
        cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN"  # our names only
        ) as copy,
    ):
        for entry in entries:
            row = []
            for attname, is_json, encoder in _COPIED:
                value = getattr(entry, attname)
                if is_json and value is not None:
                    value = json.dumps(value, cls=encoder)
                row.append(value)
            copy.write_row(row)


# Per column: its attribute, and whether COPY takes it as JSON text (None is NULL) and with
# which encoder; the rest go as they are.
_COPIED = [
    (field.attname, isinstance(field, JSONField), getattr(field, "encoder", None))
    for field in COLUMNS
]


def write_audit(tenant, actor: Actor | str, action: str, **kwargs) -> AuditEntry:
    entry = audit_entry(tenant, actor, action, **kwargs)
    entry.save()
    return entry


def mark_changed(tenant, record_ids, actor: Actor | str, *, at=None) -> None:
    """Mark records changed: last_modified, last_modified_by, exactly one version bump, and
    the writing transaction (`change_xid`, PostgreSQL), which the delta feed orders by.

    The one place that does it, for one record or a million (update_and_mark_changed sets the
    same columns to the same values, in the UPDATE that writes a batch's data). `record_ids`
    is a collection of ids or a `values("record_id")` queryset. Many ids are joined in id
    order, so PostgreSQL walks the table and its primary key once from start to end instead
    of hopping between random pages (`WHERE id IN (subquery)` visits them in hash order): for
    256k of a million records that halved the time (bench/README.md).
    """
    at = at or timezone.now()
    records = Record.objects.for_tenant(tenant)
    if isinstance(record_ids, list | set | tuple | frozenset):
        ids = sorted(set(record_ids))
        if not ids:
            return
        if db_connection.vendor != "postgresql" or len(ids) <= ORDERED_TOUCH_THRESHOLD:
            for start in range(0, len(ids), ORDERED_TOUCH_THRESHOLD):
                records.filter(pk__in=ids[start : start + ORDERED_TOUCH_THRESHOLD]).update(
                    **_changed_fields(at, actor)
                )
            return
        ids_sql, params = "SELECT unnest(%s::bigint[]) AS record_id", [ids]
    elif db_connection.vendor != "postgresql":
        records.filter(pk__in=record_ids).update(**_changed_fields(at, actor))
        return
    else:
        ids_sql, params = record_ids.query.sql_with_params()
    table = db_connection.ops.quote_name(Record._meta.db_table)
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_modified = %s, last_modified_by = %s, "  # noqa: S608
            f"version = {table}.version + 1, "
            # Once per statement (an InitPlan), not once per row.
            "change_xid = (SELECT pg_current_xact_id()::text::bigint) "
            f"FROM (SELECT DISTINCT ids.record_id FROM ({ids_sql}) ids ORDER BY 1) touched "
            f"WHERE {table}.tenant_id = %s AND {table}.id = touched.record_id",
            [at, str(actor), *params, tenant.pk],
        )


def update_and_mark_changed(tenant, rows: list[dict], columns: dict[str, str], actor, *, at=None):
    """PostgreSQL: write some `columns` ({name: SQL type}) of many records and mark some of
    them changed, as mark_changed does, in one UPDATE: each row is written once instead of
    twice (the data, then the stamp). A row is {"id", "stamp": whether to mark it changed,
    and per column "set_<name>": whether to write it, <name>: its value}. The values go as
    one JSON parameter joined as a set (a CASE of 500 branches took a second to build)."""
    if not rows:
        return
    at = at or timezone.now()
    table = db_connection.ops.quote_name(Record._meta.db_table)
    quote = db_connection.ops.quote_name

    def when_stamped(value: str, column: str) -> str:
        return f"{quote(column)} = CASE WHEN v.stamp THEN {value} ELSE r.{quote(column)} END"

    sets = [
        f"{quote(name)} = CASE WHEN v.set_{name} THEN v.{quote(name)} ELSE r.{quote(name)} END"
        for name in columns
    ] + [
        when_stamped("%s", "last_modified"),
        when_stamped("%s", "last_modified_by"),
        when_stamped("r.version + 1", "version"),
        # Once per statement (an InitPlan), not once per row.
        when_stamped("(SELECT pg_current_xact_id()::text::bigint)", "change_xid"),
    ]
    shape = ", ".join(
        ["id bigint", "stamp boolean"]
        + [f"set_{name} boolean, {quote(name)} {kind}" for name, kind in columns.items()]
    )
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} r SET {', '.join(sets)} "  # noqa: S608 (our names)
            f"FROM jsonb_to_recordset(%s::jsonb) AS v({shape}) "
            "WHERE r.tenant_id = %s AND r.id = v.id",
            [at, str(actor), json.dumps(rows), tenant.pk],
        )


def _changed_fields(at, actor) -> dict:
    """What marking a record changed sets: in the same UPDATE, so the feed's stamp (the
    writing transaction, `change_xid`) costs no extra write."""
    return {
        "last_modified": at,
        "last_modified_by": str(actor),
        "version": F("version") + 1,
        "change_xid": CurrentTransactionId(),
    }


def touch_record(record: Record, actor: Actor | str, *, at=None) -> Record:
    """Mark one record changed and refresh the instance's version and modified fields."""
    mark_changed(record.tenant, [record.pk], actor, at=at)
    record.refresh_from_db(fields=["last_modified", "last_modified_by", "version"])
    return record
