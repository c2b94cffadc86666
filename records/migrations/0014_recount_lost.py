"""The kept "lost" count now counts every removal that stands, a fix's on purpose too
(records.counts.removed_target_rows): the kept rows are dropped, and each tab is counted
again when first read (records.counts.kept_counts), as after saving an integration."""

from django.db import migrations


def forget_kept_counts(apps, schema_editor):
    apps.get_model("records", "ReferenceCount").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("records", "0013_refused_write")]

    operations = [
        migrations.RunPython(forget_kept_counts, migrations.RunPython.noop, elidable=True),
    ]
