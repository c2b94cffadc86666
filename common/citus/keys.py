"""PRIMARY KEY (tenant_id, id) and composite foreign keys for the distributed tables.

Citus requires every primary key and unique constraint of a distributed table to include the
distribution column, and a foreign key between two of them to match it too. Django keeps
`id` as the pk (it is still unique: one sequence), while the database's key is
(tenant_id, id); TenantForeignKey (integrations/tenant_keys.py) makes the ORM's joins match
it. Applied on any PostgreSQL, so one schema serves one server and a cluster; SQLite keeps
Django's keys (one file, nothing to distribute).

On a large existing table, build the new key's index beforehand without blocking writes
(README, "From one PostgreSQL to Citus"):

    CREATE UNIQUE INDEX CONCURRENTLY records_record_tenant_pkey ON records_record (tenant_id, id);

`use_tenant_primary_keys` then attaches that index instead of building one under lock.
"""

from .tables import DISTRIBUTED, DISTRIBUTION_COLUMN

COLUMN = DISTRIBUTION_COLUMN


# Constraints with their columns in key order (array_agg(a.attname ORDER BY k.ord)).
CONSTRAINT_COLUMNS = (
    "FROM pg_constraint c "
    "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
    "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
)


def _primary_key(cursor, table: str) -> tuple[str, list[str]] | None:
    cursor.execute(
        "SELECT c.conname, array_agg(a.attname ORDER BY k.ord) "  # noqa: S608 (fixed SQL)
        f"{CONSTRAINT_COLUMNS}"
        "WHERE c.contype = 'p' AND c.conrelid = %s::regclass GROUP BY c.conname",
        [table],
    )
    row = cursor.fetchone()
    return (row[0], list(row[1])) if row else None


def _keys_pointing_at(cursor, table: str) -> list[tuple[str, str, list[str]]]:
    """Foreign keys that point at `table`: (from table, name, from columns)."""
    cursor.execute(
        "SELECT c.conrelid::regclass::text, c.conname, array_agg(a.attname ORDER BY k.ord) "  # noqa: S608
        f"{CONSTRAINT_COLUMNS}"
        "WHERE c.contype = 'f' AND c.confrelid = %s::regclass "
        "GROUP BY c.conrelid, c.conname",
        [table],
    )
    return [(source, name, list(columns)) for source, name, columns in cursor.fetchall()]


def _index_exists(cursor, name: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_class WHERE relkind = 'i' AND relname = %s", [name])
    return cursor.fetchone() is not None


def _exists(cursor, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    return cursor.fetchone()[0]


def _composite_key_name(source: str, column: str) -> str:
    return f"{source}_{column}_tenant_fk"[:63]


def use_tenant_primary_keys(schema_editor, tables=DISTRIBUTED) -> None:
    """Give each of `tables` the primary key (tenant_id, id), and turn the foreign keys that
    point at it into (tenant_id, <column>) -> (tenant_id, id). Idempotent; PostgreSQL only."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            if not _exists(cursor, table):
                continue
            name, columns = _primary_key(cursor, table)
            if columns == [COLUMN, "id"]:
                continue
            pointing = _keys_pointing_at(cursor, table)
            for source, key, source_columns in pointing:
                if source not in DISTRIBUTED:
                    raise RuntimeError(
                        f"{source}.{source_columns} points at {table}, which becomes "
                        f"distributed: only distributed tables may (common/citus/tables.py)"
                    )
                cursor.execute(f'ALTER TABLE "{source}" DROP CONSTRAINT "{key}"')
            index = f"{table}_tenant_pkey"[:63]
            if not _index_exists(cursor, index):
                cursor.execute(f'CREATE UNIQUE INDEX "{index}" ON "{table}" ("{COLUMN}", "id")')
            cursor.execute(
                f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}", '
                f'ADD CONSTRAINT "{index}" PRIMARY KEY USING INDEX "{index}"'
            )
            for source, _key, source_columns in pointing:
                (column,) = source_columns
                key = _composite_key_name(source, column)
                # NOT VALID, then VALIDATE: the check of existing rows does not block writes.
                cursor.execute(
                    f'ALTER TABLE "{source}" ADD CONSTRAINT "{key}" '
                    f'FOREIGN KEY ("{COLUMN}", "{column}") REFERENCES "{table}" ("{COLUMN}", "id") '
                    "DEFERRABLE INITIALLY DEFERRED NOT VALID"
                )
                cursor.execute(f'ALTER TABLE "{source}" VALIDATE CONSTRAINT "{key}"')


def use_id_primary_keys(schema_editor, tables=DISTRIBUTED) -> None:
    """The way back (a migration's reverse): PRIMARY KEY (id) and foreign keys on the id alone."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in reversed(tables):
            if not _exists(cursor, table):
                continue
            name, columns = _primary_key(cursor, table)
            if columns == ["id"]:
                continue
            pointing = _keys_pointing_at(cursor, table)
            for source, key, _ in pointing:
                cursor.execute(f'ALTER TABLE "{source}" DROP CONSTRAINT "{key}"')
            cursor.execute(
                f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}", '
                f'ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ("id")'
            )
            for source, key, source_columns in pointing:
                column = source_columns[-1]
                key = f"{source}_{column}_fk"[:63]
                cursor.execute(
                    f'ALTER TABLE "{source}" ADD CONSTRAINT "{key}" '
                    f'FOREIGN KEY ("{column}") REFERENCES "{table}" ("id") '
                    "DEFERRABLE INITIALLY DEFERRED"
                )
