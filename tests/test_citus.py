"""The schema Citus accepts, and tenant pages that stay on one shard.

Every table is placed (common/citus/tables.py); on PostgreSQL every key of a distributed table
includes tenant_id; on a Citus cluster (`DATABASE_URL=citus://…`, .ci/run's third pass) the
tables are distributed as listed and a tenant's References page, record page and API reads
each run every statement on one shard, shown by EXPLAIN of what the request ran.
"""

import os
import re

import pytest
from django.apps import apps
from django.db import (
    DatabaseError,
    IntegrityError,
    InternalError,
    connection,
    connections,
    transaction,
)
from django.test.utils import CaptureQueriesContext

from common.citus.tables import (
    DISTRIBUTED,
    DISTRIBUTION_COLUMN,
    LOCAL,
    REFERENCE,
    is_citus,
    uses_citus_backend,
)
from integrations import apikeys
from records.models import RemoteId, writing

from .api.conftest import ApiClient, api_connector
from .factories import (
    ConnectionFactory,
    RecordFactory,
    RemoteIdFactory,
    TenantFactory,
    make_reference,
)

on_postgres = pytest.mark.postgres
on_citus = pytest.mark.skipif(
    not uses_citus_backend(connection),
    reason="needs DATABASE_URL=citus://… (make test-citus)",
)


def model_tables() -> set[str]:
    tables = set()
    for model in apps.get_models(include_auto_created=True):
        if model._meta.managed and not model._meta.proxy:
            tables.add(model._meta.db_table)
    return tables


def test_every_table_has_exactly_one_place():
    listed = [*DISTRIBUTED, *REFERENCE, *LOCAL]
    assert len(listed) == len(set(listed)), "a table is listed twice"
    unplaced = model_tables() - set(listed)
    assert not unplaced, f"place these in common/citus/tables.py: {sorted(unplaced)}"
    unknown = set(listed) - model_tables() - {"django_migrations"}
    assert not unknown, f"no model has these tables: {sorted(unknown)}"


def test_distributed_tables_are_the_tenant_owned_ones():
    for model in apps.get_models():
        table = model._meta.db_table
        if table in DISTRIBUTED:
            tenant = model._meta.get_field("tenant")
            assert tenant.column == DISTRIBUTION_COLUMN and not tenant.null, table
            for field in model._meta.fields:
                if field.is_relation and field.related_model._meta.db_table in DISTRIBUTED:
                    # Joins between distributed tables must carry the tenant.
                    assert type(field).__name__ == "TenantForeignKey", f"{table}.{field.name}"


@pytest.mark.django_db
def test_joins_and_lookups_between_tenant_tables_carry_the_tenant(world):
    """A join between two tenant-owned tables matches tenant_id too, both ways, and
    `remote_id.record` fetches by (tenant, id): what keeps them on one shard."""
    from records.models import Record

    def join_condition(queryset) -> str:
        sql = str(queryset.query)
        return sql.split(" JOIN ", 1)[1].split(" WHERE ", 1)[0]

    forward = RemoteId.objects.for_tenant(world.tenant).select_related("record")
    assert join_condition(forward).count('"tenant_id"') == 2
    reverse = Record.objects.for_tenant(world.tenant).filter(remote_ids__remote_id="x")
    assert join_condition(reverse).count('"tenant_id"') == 2

    record = make_reference(world.integration, source_id="S-1")
    remote_id = RemoteId.objects.for_tenant(world.tenant).get(record=record)
    with CaptureQueriesContext(connection) as captured:
        assert remote_id.record == record
    (fetch,) = captured.captured_queries
    assert "tenant_id" in fetch["sql"].split("WHERE", 1)[1]


@pytest.mark.django_db
def test_saving_and_refreshing_a_tenant_row_address_it_by_tenant_and_id(world):
    record = RecordFactory(tenant=world.tenant)
    with CaptureQueriesContext(connection) as captured:
        record.data = {"x": 1}
        record.save(update_fields=["data"])
        record.refresh_from_db()
    update, select = (query["sql"] for query in captured.captured_queries)
    assert update.startswith("UPDATE") and "tenant_id" in update.split("WHERE", 1)[1]
    assert "tenant_id" in select.split("WHERE", 1)[1]


def _constraints(cursor, table: str) -> list[tuple[str, str, list[str], str | None, list]]:
    """(name, type, columns, referenced table, referenced columns) of `table`'s constraints,
    and its unique indexes as type "u"."""
    cursor.execute(
        """
        SELECT c.conname, c.contype,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num
                     ORDER BY k.ord),
               c.confrelid::regclass::text,
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(num, ord)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num
                     ORDER BY k.ord)
        FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u', 'f')
        UNION ALL
        SELECT i.relname, 'u',
               ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(num, ord)
                     JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.num
                     ORDER BY k.ord),
               NULL, ARRAY[]::name[]
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = %s::regclass AND x.indisunique
        """,
        [table, table],
    )
    return cursor.fetchall()


@on_postgres
@pytest.mark.django_db
def test_every_key_of_a_distributed_table_includes_the_tenant():
    problems = []
    with connection.cursor() as cursor:
        for table in DISTRIBUTED:
            for name, kind, columns, target, target_columns in _constraints(cursor, table):
                if kind == "p" and list(columns) != [DISTRIBUTION_COLUMN, "id"]:
                    problems.append(f"{table}: primary key {columns}")
                if kind == "u" and DISTRIBUTION_COLUMN not in columns:
                    problems.append(f"{table}: unique {name} {columns}")
                composite = list(columns)[0] == DISTRIBUTION_COLUMN and list(target_columns) == [
                    DISTRIBUTION_COLUMN,
                    "id",
                ]
                if kind == "f" and target in DISTRIBUTED and not composite:
                    problems.append(f"{table}: foreign key {name} {columns} -> {target}")
                if kind == "f" and target not in DISTRIBUTED and target not in REFERENCE:
                    problems.append(f"{table}: foreign key {name} -> {target} (not a reference)")
    assert not problems, "\n".join(problems)


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_a_composite_foreign_key_refuses_another_tenants_record():
    """The key is (tenant_id, record_id): a remote id cannot point at another tenant's record,
    which a key on the id alone would allow. Checked when the transaction commits (the keys
    are deferred, as Django's are)."""
    mine, theirs = TenantFactory(), TenantFactory()
    their_record = RecordFactory(tenant=theirs)
    my_remote_id = RemoteIdFactory(tenant=mine, record=RecordFactory(tenant=mine))
    # Citus reports it as the commit failing on the worker that holds the tenant's shard.
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic(), writing():
        RemoteId.objects.for_tenant(mine).filter(pk=my_remote_id.pk).update(
            record_id=their_record.pk
        )
    assert RemoteId.objects.for_tenant(mine).get(pk=my_remote_id.pk).record_id != their_record.pk


@on_citus
@pytest.mark.django_db
def test_the_cluster_places_every_table_as_listed():
    assert is_citus(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT logicalrelid::regclass::text, partmethod, "
            "column_to_column_name(logicalrelid, partkey), colocationid FROM pg_dist_partition"
        )
        placed = {table: (method, column, group) for table, method, column, group in cursor}
    for table in DISTRIBUTED:
        assert placed[table][:2] == ("h", DISTRIBUTION_COLUMN), table
    assert len({placed[table][2] for table in DISTRIBUTED}) == 1, "not co-located"
    for table in REFERENCE:
        assert placed[table][0] == "n", table
    for table in LOCAL:
        assert table not in placed, table


@on_citus
@pytest.mark.django_db
@pytest.mark.skipif(os.environ.get("CITUS_FAN_OUT") != "error", reason="the guard is off")
def test_the_guard_fails_a_statement_that_would_visit_every_shard():
    """The app's connections run with the guard (tests/conftest.py lifts it only around the
    suite's own statements): a count over all tenants fails instead of running."""
    other = connections.create_connection("default")
    try:
        with pytest.raises(DatabaseError, match="multi-task query"), other.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM records_record")
        with other.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM records_record WHERE tenant_id = 1")
    finally:
        other.close()


TASK_COUNT = re.compile(r"Task Count: (\d+)")


def shards_touched(captured) -> list[tuple[int, str]]:
    """Every statement the request ran on a distributed table, with the tasks EXPLAIN plans
    for it (1: one shard)."""
    found = []
    with connection.cursor() as cursor:
        for query in captured:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT") or not any(
                table in sql for table in DISTRIBUTED
            ):
                continue
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            tasks = [int(count) for count in TASK_COUNT.findall(plan)]
            found.append((max(tasks, default=0), sql))
    return found


@on_citus
@pytest.mark.django_db
def test_a_tenants_pages_and_api_reads_each_touch_one_shard(admin_client, world):
    """Both tenants have records; every statement of the References page (and its search),
    the record page and the API's reads plans exactly one task: one shard."""
    warehouse = ConnectionFactory(tenant=world.tenant, name="Warehouse", connector=api_connector())
    api = ApiClient(warehouse, apikeys.rotate_key(warehouse))
    records = [
        make_reference(world.integration, source_id=f"S-{n}", target_id=f"T-{n}") for n in range(3)
    ]
    make_reference(world.other_integration, source_id="S-0", target_id="T-0")
    RemoteIdFactory(record=records[0], connection=warehouse, remote_id="WH-1")
    base = f"/t/{world.tenant.slug}/integrations/{world.integration.pk}/references/orders/"
    requests = {
        "References page": lambda: admin_client.get(base),
        "References search": lambda: admin_client.get(base + "?q=T-1"),
        "record page": lambda: admin_client.get(
            f"/t/{world.tenant.slug}/records/{records[0].local_id}/"
        ),
        "API read by local id": lambda: api.get(f"order/{records[0].local_id}"),
        "API read by remote id": lambda: api.get("order/by-remote-id", {"remoteId": "WH-1"}),
        "API lookup": lambda: api.post("order/lookup", {"remoteIds": ["WH-1", "nope"]}),
        "API feed": lambda: api.get("order", {"modifiedAtOrAfter": "2000-01-01T00:00:00Z"}),
    }
    for name, request in requests.items():
        with CaptureQueriesContext(connection) as captured:
            response = request()
        assert response.status_code == 200, name
        statements = shards_touched(captured.captured_queries)
        assert statements, f"{name}: no statement on a distributed table"
        wide = [(tasks, sql) for tasks, sql in statements if tasks != 1]
        assert not wide, f"{name} ran statements on {wide[0][0]} shards: {wide[0][1]}"
