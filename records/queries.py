"""Read-side helpers for the Records pages: cheap queries that stay fast on big tenants.

The rules that change data live in services.py; this module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection as db_connection
from django.db.models import Exists, OuterRef, Q

from common.entities import EntityType
from common.paging import Keyset, Located, parse_hex32, parse_moment
from common.prepared import PreparedQuery
from integrations.models import Connection, Connector, Integration, Tenant

from .aggregates import AsJSON, json_rows
from .models import AuditEntry, BatchChange, CustomData, Record, RefusedWrite, RemoteId

# The tabs always shown, in this order; other types present on the tenant follow.
STANDARD_TYPES = list(EntityType.values)


@dataclass(frozen=True)
class RecordTypeTab:
    record_type: str
    label: str


def target_row(integration):
    """The integration's target row of the outer row's record, for correlated subqueries
    (Exists, Subquery): the one definition of "this record's target id" that the References
    table, the counts, the services and Health use."""
    return side_row(integration, integration.target_id)


def source_row(integration):
    """The integration's source row of the outer row's record (see `target_row`)."""
    return side_row(integration, integration.source_id)


def side_row(integration, connection_id: int):
    return RemoteId.objects.for_tenant(integration.tenant).filter(
        connection_id=connection_id, record_id=OuterRef("record_id")
    )


def type_label(record_type: str) -> str:
    """Plural label of a record type for tabs: "Orders", or "Invoice" for unknown types."""
    if record_type in STANDARD_TYPES:
        return EntityType(record_type).label
    return record_type.replace("_", " ").capitalize()


def modified_keyset(name: str, descending: bool, *, record: str = "record__") -> Keyset:
    """Paging by when records changed, local_id as the tie-break (record_delta_sync_idx).

    `record` is the path from a row to its record: "record__" for remote ids, "" for records.
    """

    def values(row):
        record_of_row = row.record if record else row
        return record_of_row.last_modified.isoformat(), record_of_row.local_id

    return Keyset(
        name, f"{record}last_modified", f"{record}local_id", descending, values,
        parse_moment, parse_hex32,
    )  # fmt: skip


# The Records list: newest first.
RECORDS_KEYSET = modified_keyset("records", True, record="")


def record_at(records, offset: int, *, descending: bool) -> Located:
    """The (last_modified, local_id) of the record at `offset` in that order: where a numbered
    page starts (common.paging.numbered_page). `records` is one tenant's records of one type,
    so the OFFSET walks record_delta_sync_idx alone, an index-only scan: 20-60 ms for 175,000
    records on PostgreSQL, where the Records list's own query would build each skipped
    record's remote ids."""
    sign = "-" if descending else ""
    found = list(
        records.order_by(f"{sign}last_modified", f"{sign}local_id").values_list(
            "last_modified", "local_id"
        )[offset : offset + 1]
    )
    return Located(tuple(found[0]) if found else None)


def record_types_in_use(tenant) -> list[str]:
    """Distinct record types of a tenant, in one query that seeks the index once per type.

    A plain DISTINCT reads every row of the tenant; this recursive "loose index scan" jumps
    from one type to the next on (tenant, record_type, ...), on PostgreSQL and SQLite alike.
    """
    table = db_connection.ops.quote_name(Record._meta.db_table)
    sql = f"""
        WITH RECURSIVE types(record_type) AS (
            SELECT MIN(record_type) FROM {table} WHERE tenant_id = %s
            UNION ALL
            SELECT (SELECT MIN(record_type) FROM {table}
                    WHERE tenant_id = %s AND record_type > types.record_type)
            FROM types WHERE types.record_type IS NOT NULL
        )
        SELECT record_type FROM types WHERE record_type IS NOT NULL
    """  # noqa: S608 (the table name is ours, values are parameters)
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, tenant.pk])
        return [row[0] for row in cursor.fetchall()]


def record_type_tabs(tenant, current: str | None = None) -> list[RecordTypeTab]:
    """The four standard types, then any other type present (and the current one)."""
    others = sorted(
        {t for t in record_types_in_use(tenant) if t not in STANDARD_TYPES}
        | ({current} if current and current not in STANDARD_TYPES else set())
    )
    return [RecordTypeTab(t, type_label(t)) for t in STANDARD_TYPES + others]


def record_history(record: Record):
    """Audit entries about one record, newest first: its own entries and bulk batches
    (delete all, import) that removed or added one of its remote ids."""
    batch_ids = (
        BatchChange.objects.for_tenant(record.tenant).filter(record=record).values("batch_id")
    )
    return (
        AuditEntry.objects.for_tenant(record.tenant)
        .filter(Q(record=record) | Q(record__isnull=True, batch_id__in=batch_ids))
        .select_related("connection", "integration__source", "integration__target", "batch")
        .order_by("-created_at", "-id")
    )


def leading_remote_id(remote_ids, source_connection_ids=frozenset()):
    """The id people know a record by, for its title and its Records row: the id in a
    connection that is an integration's source (where the order or article was made), with
    a ref (an order number, a SKU) if there is one; else the first id with a ref, else the
    first id. None when no connection knows it. `remote_ids` in display order, fetched."""
    remote_ids = list(remote_ids)

    def rank(row):
        return (row.connection_id not in source_connection_ids, not row.remote_ref)

    return min(remote_ids, key=rank, default=None)


# --- the record page in one query --------------------------------------------------------------


# The connection of a remote id or custom data entry, as JSON row fields (see _connection).
CONNECTION_FIELDS = {
    "connection_pk": "connection_id",
    "connection_hex": "connection__connection_id",
    "connection_name": "connection__name",
    "connector_name": "connection__connector__name",
}


def remote_id_rows(tenant):
    """A record's remote ids with their connections, as one JSON array (read them with
    `remote_ids_of`): for an annotation of a Record queryset."""
    return json_rows(
        RemoteId.objects.for_tenant(tenant).filter(record=OuterRef("pk")),
        by="record",
        pk="pk",
        remote_id="remote_id",
        remote_ref="remote_ref",
        record_type="record_type",
        **CONNECTION_FIELDS,
    )


def custom_data_rows(tenant):
    """A record's custom data with their connections (None when unscoped), as one JSON array
    (read them with `custom_data_of`): for an annotation of a Record queryset."""
    return json_rows(
        CustomData.objects.for_tenant(tenant).filter(record=OuterRef("pk")),
        by="record",
        pk="pk",
        module_id="module_id",
        key="key",
        type="type",
        value=AsJSON("value"),
        **CONNECTION_FIELDS,
    )


def records_for_their_page(tenant):
    """Records with everything their page shows but history, in the record's own query:
    remote ids and custom data (with their connections) as JSON rows, and the tenant's
    integrations and connections (a handful: for the links and the add form's choices).
    Read them as model objects with `remote_ids_of`, `custom_data_of`, `integrations_of`
    and `connections_of`."""
    return (
        Record.objects.for_tenant(tenant)
        .select_related("source_connection")
        .annotate(
            remote_id_rows=remote_id_rows(tenant),
            custom_data_rows=custom_data_rows(tenant),
            integration_rows=json_rows(
                Integration.objects.for_tenant(tenant),
                by="tenant",
                pk="pk",
                name="name",
                entity_types=AsJSON("entity_types"),
                source_pk="source_id",
                source_name="source__name",
                target_pk="target_id",
                target_name="target__name",
            ),
            connection_rows=json_rows(
                Connection.objects.for_tenant(tenant),
                by="tenant",
                pk="pk",
                connection_hex="connection_id",
                connection_name="name",
                connector_name="connector__name",
            ),
            # Whether a connector's write of one of its ids (or onto it) was refused: only a
            # record with some costs the page the query that lists them (records.refusals).
            has_refused_writes=Exists(
                RefusedWrite.objects.for_tenant(tenant).filter(holder=OuterRef("pk"))
            )
            | Exists(RefusedWrite.objects.for_tenant(tenant).filter(record=OuterRef("pk"))),
        )
    )


def _connection(row: dict, tenant) -> Connection:
    connection = Connection(
        pk=row["connection_pk"] if "connection_pk" in row else row["pk"],
        connection_id=row["connection_hex"],
        name=row["connection_name"],
        tenant=tenant,
    )
    connection.connector = Connector(name=row["connector_name"])
    return connection


def remote_ids_of(record: Record) -> list[RemoteId]:
    """The record's remote ids, ordered by connection name (then connection)."""
    remote_ids = []
    for row in record.remote_id_rows or []:
        remote_id = RemoteId(
            pk=row["pk"],
            tenant=record.tenant,
            record=record,
            record_type=row["record_type"],
            remote_id=row["remote_id"],
            remote_ref=row["remote_ref"],
        )
        remote_id.connection = _connection(row, record.tenant)
        remote_ids.append(remote_id)
    remote_ids.sort(key=lambda row: (row.connection.name, row.connection.connection_id))
    return remote_ids


def custom_data_of(record: Record) -> list[CustomData]:
    items = []
    for row in record.custom_data_rows or []:
        item = CustomData(
            pk=row["pk"],
            tenant=record.tenant,
            record=record,
            module_id=row["module_id"],
            key=row["key"],
            type=row["type"],
            value=row["value"],
        )
        item.connection = _connection(row, record.tenant) if row["connection_pk"] else None
        items.append(item)
    return items


def integrations_of(record: Record) -> list[Integration]:
    """The tenant's integrations, in their usual order (name, id), sides named."""
    integrations = []
    for row in record.integration_rows or []:
        integration = Integration(
            pk=row["pk"], tenant=record.tenant, name=row["name"], entity_types=row["entity_types"]
        )
        integration.source = Connection(
            pk=row["source_pk"], name=row["source_name"], tenant=record.tenant
        )
        integration.target = Connection(
            pk=row["target_pk"], name=row["target_name"], tenant=record.tenant
        )
        integrations.append(integration)
    integrations.sort(key=lambda integration: (integration.name, integration.pk))
    return integrations


def connections_of(record: Record) -> list[Connection]:
    """The tenant's connections by name (the add form's choices)."""
    connections = [_connection(row, record.tenant) for row in record.connection_rows or []]
    connections.sort(key=lambda connection: (connection.name, connection.pk))
    return connections


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


def record_names(tenant, record_ids, *, besides=None, prefer=None) -> dict[int, str]:
    """Records as people know them: "Shopify 5001001470 (#1211)", by their id in `prefer`
    (an integration's source, what people search for) when they have one, else in the first
    connection by name other than `besides` (the connection whose id is in question) when
    they have another; one query."""
    ranked: dict[int, tuple] = {}
    rows = (
        RemoteId.objects.for_tenant(tenant)
        .filter(record_id__in=list(record_ids))
        .values_list("record_id", "connection_id", "connection__name", "remote_id", "remote_ref")
    )
    for record_id, connection_id, connection_name, remote_id, remote_ref in rows:
        name = f"{connection_name} {remote_id}" + (f" ({remote_ref})" if remote_ref else "")
        rank = (connection_id != prefer, connection_id == besides, connection_name, connection_id)
        if record_id not in ranked or rank < ranked[record_id][0]:
            ranked[record_id] = (rank, name)
    return {record_id: name for record_id, (_, name) in ranked.items()}
