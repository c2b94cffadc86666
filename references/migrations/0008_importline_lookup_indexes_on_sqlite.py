from django.db import migrations

TABLE = "references_importline"


def create(apps, schema_editor):
    """SQLite has no hash joins: without these, mark_entangled's EXISTS scans every line for
    every line (15 s at 3,000 lines). PostgreSQL hashes those semi-joins, and its btree could
    not hold the over-long ids an upload may carry, so it gets none."""
    if schema_editor.connection.vendor == "sqlite":
        for column in ("source_id", "target_id"):
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS "importline_{column}_idx" '
                f'ON "{TABLE}" ("upload_id", "{column}")'
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for column in ("source_id", "target_id"):
            schema_editor.execute(f'DROP INDEX IF EXISTS "importline_{column}_idx"')


class Migration(migrations.Migration):
    dependencies = [("references", "0007_line_tables_without_database_foreign_keys")]

    operations = [migrations.RunPython(create, drop)]
