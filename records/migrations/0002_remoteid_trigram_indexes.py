"""Trigram GIN indexes for substring search on remote ids and refs (PostgreSQL only).

A substring search cannot use a btree; with pg_trgm a GIN index answers it from the trigrams
of the search term. The indexed expression is exactly what Django's `icontains` (and
`istartswith`, `iexact`) generates on PostgreSQL, `UPPER("remote_id"::text) LIKE UPPER(%s)`,
so ordinary ORM lookups use them (the Django admin's search too). SQLite has no pg_trgm: there these operations do nothing and
substring search scans, which is fine at the sizes SQLite is used for (tests, demos).

The indexes are not in RemoteId.Meta.indexes because Django would then also try to create
them on SQLite. They are built CONCURRENTLY (non-atomic migration) so that adding them to a
live table with millions of rows does not block writes.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEXES = {
    "remoteid_remote_id_trgm": "remote_id",
    "remoteid_remote_ref_trgm": "remote_ref",
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} "
            f"ON records_remoteid USING gin ((UPPER({column}::text)) gin_trgm_ops)"
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("records", "0001_initial")]

    operations = [
        TrigramExtension(),
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
