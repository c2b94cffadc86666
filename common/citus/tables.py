"""Where each table lives on Citus: the one list the migrations, the tests and the docs read.

- DISTRIBUTED: sharded by tenant_id, all co-located, so a tenant's rows of every table sit on
  one node and a statement naming the tenant runs on that node alone. Their primary keys,
  unique constraints and foreign keys among them all include tenant_id (common/citus/keys.py,
  tests/test_citus.py).
- REFERENCE: small tables every query joins to (who, which tenant, which connection):
  copied to every node, so a join from a distributed table to them stays on its shard.
- LOCAL: the coordinator's own bookkeeping, never joined to tenant data.

Every table of an installed app is in exactly one list (tests/test_citus.py fails otherwise),
so a new model has to be placed before it can be migrated onto a cluster.
"""

DISTRIBUTION_COLUMN = "tenant_id"

# The first is the co-location anchor: the others are placed beside it.
DISTRIBUTED = (
    "records_record",
    "records_remoteid",
    "records_remoteidfingerprint",
    "records_refusedwrite",
    "records_customdata",
    "records_batch",
    "records_batchchange",
    "records_auditentry",
    "records_job",
    "records_referencecount",
    "references_importupload",
    "references_importline",
    "references_reconcileupload",
    "references_reconcileline",
    "references_healthscan",
    "references_healthscanrow",
)

REFERENCE = (
    "integrations_reseller",
    "integrations_tenant",
    "integrations_membership",
    "integrations_reseller_staff",
    "integrations_connector",
    "integrations_connection",
    "integrations_integration",
    # People: uploads name their uploader and memberships their user (a distributed or
    # reference table may only point at a reference table). Django's tables around users
    # point at them, so they are copied too; all are small and rarely written.
    "auth_user",
    "auth_group",
    "auth_permission",
    "auth_group_permissions",
    "auth_user_groups",
    "auth_user_user_permissions",
    "django_content_type",
    "django_admin_log",
)

LOCAL = (
    "django_migrations",
    "django_session",
    "django_tasks_database_dbtaskresult",
    "integrations_authfailure",
)

# Statements that visit every shard on purpose (the suite's fan-out guard lets only these
# through, in tests/citus.py's `fan_out_allowed`), each with why.
FAN_OUT_ALLOWED = {
    "the reseller's Django admin lists records, remote ids and audit entries across its "
    "tenants": "a reseller's view spans tenants by definition; it is paginated and rare",
    "purge_uploads and the job sweeper look for expired uploads and stalled jobs of every "
    "tenant": "one periodic statement for the whole installation instead of one per tenant",
}


def is_citus(connection) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
        return cursor.fetchone() is not None


def _placed(cursor) -> set[str]:
    cursor.execute("SELECT logicalrelid::regclass::text FROM pg_dist_partition")
    return {name for (name,) in cursor.fetchall()}


def _existing(cursor, tables) -> list[str]:
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(%s)",
        [list(tables)],
    )
    found = {name for (name,) in cursor.fetchall()}
    return [table for table in tables if table in found]


def distribute(connection) -> None:
    """Make the listed tables reference and distributed tables, if the database is Citus and
    they are not yet; idempotent, and a no-op elsewhere.

    Citus distributes a table only while no foreign key ties it to a plain table, so the keys
    among the tables being placed are set aside first and put back after (Citus then creates
    them on every shard).
    """
    if not is_citus(connection):
        return
    with connection.cursor() as cursor:
        # Keys are added after the distribution in this transaction, from the coordinator.
        cursor.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
        placed = _placed(cursor)
        reference = [t for t in _existing(cursor, REFERENCE) if t not in placed]
        distributed = [t for t in _existing(cursor, DISTRIBUTED) if t not in placed]
        moving = reference + distributed
        if not moving:
            return
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' "
            "AND (conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s))",
            [moving, moving],
        )
        keys = cursor.fetchall()
        for table, name, _ in keys:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        for table in reference:
            cursor.execute("SELECT create_reference_table(%s)", [table])
        anchor = DISTRIBUTED[0] if DISTRIBUTED[0] in placed else None
        for table in distributed:
            cursor.execute(
                "SELECT create_distributed_table(%s, %s, colocate_with => %s)",
                [table, DISTRIBUTION_COLUMN, anchor or "default"],
            )
            anchor = anchor or table
        for table, name, definition in keys:
            cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
