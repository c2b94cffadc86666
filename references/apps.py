from django.apps import AppConfig


class ReferencesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "references"

    def ready(self):
        from . import jobs  # noqa: F401 (registers the import job kind)
