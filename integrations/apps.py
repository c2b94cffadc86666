from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"

    def ready(self):
        from django.contrib.auth import get_user_model

        from .models import Connection, Membership
        from .names import forget_connection_names, forget_people_names

        post_save.connect(forget_connection_names, sender=Connection)
        post_delete.connect(forget_connection_names, sender=Connection)
        for sender in (get_user_model(), Membership):
            post_save.connect(forget_people_names, sender=sender)
            post_delete.connect(forget_people_names, sender=sender)
