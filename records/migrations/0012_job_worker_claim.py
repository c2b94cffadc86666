# Exactly-once jobs: the worker that claimed a job, and whether a failed one may be restarted.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0011_record_change_xid_feed"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="restartable",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="job",
            name="worker",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
    ]
