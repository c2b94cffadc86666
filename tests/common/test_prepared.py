"""A prepared query answers exactly what its queryset answers, for each new set of values."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.prepared import PreparedQuery
from integrations.models import Connection, Integration
from tests.factories import make_reference

connections_named = PreparedQuery(
    lambda tenant_id, name: (
        Connection.objects.filter(tenant_id=tenant_id, name=name)
        .select_related("connector", "tenant")
        .order_by("pk")
    )
)


@pytest.mark.django_db
class TestPreparedQuery:
    def test_each_call_binds_its_own_values(self, world):
        shop = connections_named.first(tenant_id=world.tenant.pk, name="Shopify")
        erp = connections_named.first(tenant_id=world.tenant.pk, name="Fortnox")
        assert (shop, erp) == (world.shop, world.erp)
        assert connections_named.first(tenant_id=world.other_tenant.pk, name="Shopify") is None

    def test_select_related_comes_with_the_row(self, world):
        shop = connections_named.first(tenant_id=world.tenant.pk, name="Shopify")
        with CaptureQueriesContext(connection) as queries:
            assert shop.connector.code == "shopify"
            assert shop.tenant.slug == "acme"
        assert len(queries) == 0

    def test_annotations_are_converted_like_the_querysets(self, world):
        from records.queries import record_by_local_id, records_with_ids_and_custom_data

        record = make_reference(world.integration, source_id="5001", target_id="INV-1")
        prepared = record_by_local_id.first(
            tenant_id=world.tenant.pk, record_type="order", local_id=record.local_id
        )
        plain = records_with_ids_and_custom_data(world.tenant).get(pk=record.pk)
        assert prepared == plain
        assert prepared.remote_id_rows == plain.remote_id_rows
        assert {row["remote_id"] for row in prepared.remote_id_rows} == {"5001", "INV-1"}

    def test_times_bind_as_the_backend_adapts_them(self, world):
        from records.models import Record

        modified_since = PreparedQuery(
            lambda tenant_id, since: Record.objects.filter(
                tenant_id=tenant_id, last_modified__gte=since
            ).order_by("pk")
        )
        old = make_reference(world.integration, source_id="5001")
        new = make_reference(world.integration, source_id="5002")
        Record.objects.filter(pk=old.pk).update(last_modified=timezone.now() - timedelta(days=2))
        since = timezone.now() - timedelta(days=1)
        assert modified_since.all(tenant_id=world.tenant.pk, since=since) == [new]
        assert modified_since.all(tenant_id=world.tenant.pk, since=since - timedelta(days=2)) == [
            old,
            new,
        ]

    def test_only_ints_strings_and_aware_times_are_bound(self, world):
        with pytest.raises(TypeError):
            connections_named.first(tenant_id=world.tenant.pk, name=None)
        with pytest.raises(TypeError):
            connections_named.first(tenant_id=True, name="Shopify")
        with pytest.raises(TypeError, match="aware"):
            connections_named.first(tenant_id=world.tenant.pk, name=datetime(2026, 1, 1))

    def test_a_value_the_orm_transforms_is_refused(self, world):
        # icontains wraps the value in %...%: it is no longer a parameter of its own.
        named_like = PreparedQuery(
            lambda part: Integration.objects.filter(name__icontains=part).order_by("pk")
        )
        with pytest.raises(ValueError, match="part"):
            named_like.all(part="Shop")


@pytest.mark.django_db
class TestStatementCursor:
    """common.prepared.statement_cursor: PostgreSQL parses and plans a hot statement once per
    session; the rows, the errors and the execute wrappers are Django's cursor's."""

    SQL = "SELECT name FROM integrations_connection WHERE tenant_id = %(tenant)s ORDER BY name"

    def rows(self, cursor_of, tenant) -> list:
        with cursor_of() as cursor:
            cursor.execute(self.SQL, {"tenant": tenant.pk})
            return cursor.fetchall()

    def prepared_here(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                ["SELECT name FROM integrations_connection WHERE tenant_id = $1%"],
            )
            return cursor.fetchone()[0] == 1

    def test_the_same_rows_as_django_s_cursor(self, world):
        from common.prepared import statement_cursor

        plain = self.rows(connection.cursor, world.tenant)
        assert ("Shopify",) in plain
        for tenant in (world.tenant, world.other_tenant, world.tenant):
            assert self.rows(statement_cursor, tenant) == self.rows(connection.cursor, tenant)
        if connection.vendor == "postgresql":
            assert self.prepared_here()

    def test_its_errors_are_django_s(self, world):
        from django.db import DatabaseError, transaction

        from common.prepared import statement_cursor

        # psycopg's own errors are not Django's DatabaseError: this one was translated.
        with pytest.raises(DatabaseError), transaction.atomic(), statement_cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM integrations_connection")

    def test_execute_wrappers_see_it(self, world):
        from common.prepared import statement_cursor

        seen = []

        def wrapper(execute, sql, params, many, context):
            seen.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(wrapper):
            self.rows(statement_cursor, world.tenant)
        assert seen == [self.SQL]

    def test_while_queries_are_logged_the_log_has_the_statement(self, world):
        from common.prepared import statement_cursor

        with CaptureQueriesContext(connection) as queries:
            self.rows(statement_cursor, world.tenant)
        assert "integrations_connection" in queries[0]["sql"]
