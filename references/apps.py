from django.apps import AppConfig


class ReferencesConfig(AppConfig):
    """The References pages. Loading it registers their five job kinds (references/jobs.py):
    import, reconcile_compare, reconcile_apply, health_fix and health_scan."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "references"

    def ready(self):
        from . import jobs  # noqa: F401 (registers the job kinds)
