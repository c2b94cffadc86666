from django.apps import AppConfig
from django.db.models.signals import post_save


def _forget_counts(sender, instance, created, raw=False, **kwargs):
    """An integration whose connections or entity types may have changed is counted afresh
    when next read (records.counts keeps counts per integration and entity type)."""
    if not created and not raw:
        from . import counts

        counts.forget(instance)


class RecordsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "records"

    def ready(self):
        post_save.connect(
            _forget_counts, sender="integrations.Integration", dispatch_uid="records-counts"
        )
