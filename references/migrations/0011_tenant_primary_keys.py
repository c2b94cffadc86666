"""PRIMARY KEY (tenant_id, id) on every distributed table and composite foreign keys among them,
on PostgreSQL (common/citus/keys.py). In this app, the last of the three, so that every table
it changes exists; records' foreign keys were made TenantForeignKeys in records 0015."""

from django.db import migrations

from common.citus.keys import use_id_primary_keys, use_tenant_primary_keys


def forwards(apps, schema_editor):
    use_tenant_primary_keys(schema_editor)


def backwards(apps, schema_editor):
    use_id_primary_keys(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0015_tenant_keys"),
        ("references", "0010_tenant_keys"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
