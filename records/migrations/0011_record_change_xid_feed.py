# The gapless delta feed: each record keeps the transaction that last changed it.

import records.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0003_health"),
        ("records", "0010_referencecount"),
    ]

    operations = [
        migrations.AddField(
            model_name="record",
            name="change_xid",
            field=models.BigIntegerField(
                blank=True,
                db_default=records.models.CurrentTransactionId(),
                editable=False,
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="record",
            index=models.Index(
                fields=["tenant", "record_type", "change_xid", "id"], name="record_feed_idx"
            ),
        ),
    ]
