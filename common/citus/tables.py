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

import contextlib

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

# Statements that visit every shard on purpose, each with why. They run inside
# `fan_out_allowed()`, which lifts the guard the suite runs with on the cluster
# (`citus.multi_task_query_log_level = error`); everything else a tenant does stays on its shard.
FAN_OUT_ALLOWED = {
    "the reseller's Django admin (config/citus/middleware.py)": "it lists records, remote ids, "
    "jobs and audit entries across the reseller's tenants by definition; paginated and rare",
    "the job sweeper (records.jobs.sweep)": "one periodic look for unclaimed jobs and dead "
    "workers of every tenant, instead of one query per tenant",
    "purge_uploads (Upload.purge_expired for all tenants)": "one periodic delete of the uploads "
    "every tenant left behind",
    "recount_all and scan_health for all tenants, jobs --restart JOB_ID (management commands)": (
        "maintenance over the whole installation, run by an operator or a schedule"
    ),
    "data migrations (records/0009)": "a migration updates every tenant's rows once, as the "
    "schema change it belongs to does",
}

GUARD = "citus.multi_task_query_log_level"


@contextlib.contextmanager
def fan_out_allowed(connection=None):
    """Run the block's statements even if they visit every shard (one of FAN_OUT_ALLOWED).

    A no-op off Citus. On Citus it sets the guard off for the block and back after."""
    from django.db import connection as default_connection

    connection = connection or default_connection
    if not uses_citus_backend(connection):
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [GUARD])
        (before,) = cursor.fetchone()
        cursor.execute("SELECT set_config(%s, 'off', false)", [GUARD])
    try:
        yield
    finally:
        # In a transaction that failed the reset fails too; its rollback undoes the SET.
        with contextlib.suppress(Exception), connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, false)", [GUARD, before or "off"])


def uses_citus_backend(connection) -> bool:
    """Whether the connection is the app's `citus://` backend (config/citus), which runs the
    statements that differ on a cluster. is_citus() asks the database instead."""
    return connection.settings_dict["ENGINE"] == "config.citus"


def is_citus(connection) -> bool:
    """Whether the database has the citus extension, whatever backend reaches it (migrations,
    the bench's loader)."""
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
