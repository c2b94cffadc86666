from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"

    def ready(self):
        from .models import Connection
        from .names import forget_connection_names

        post_save.connect(forget_connection_names, sender=Connection)
        post_delete.connect(forget_connection_names, sender=Connection)
