"""On Citus, distribute the tenant-owned tables by tenant_id and copy the reference tables to
every node (common/citus/tables.py); on plain PostgreSQL and SQLite it does nothing. After the
last migration of every app whose tables it places."""

from django.db import migrations

from common.citus.tables import distribute


def forwards(apps, schema_editor):
    distribute(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("references", "0011_tenant_primary_keys"),
        ("integrations", "0003_health"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Undistributing is a different operation (undistribute_table): not done by a rollback.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
