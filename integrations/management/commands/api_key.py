"""Rotate an API connection's key and print it: the only time the key is shown.

KEY=$(python manage.py api_key <connection_id>)
"""

from django.core.management.base import BaseCommand, CommandError

from integrations import apikeys
from integrations.models import Connection


class Command(BaseCommand):
    help = (
        "Rotate the API key of an API connection and print the new key (the old one stops working)."
    )

    def add_arguments(self, parser):
        parser.add_argument("connection_id", help="The connection's 32-hex connection_id.")

    def handle(self, *args, connection_id, **options):
        connection = (
            Connection.objects.select_related("connector", "tenant")
            .filter(connection_id=connection_id.strip().lower())
            .first()
        )
        if connection is None:
            raise CommandError(f"No connection with connection_id {connection_id}.")
        try:
            key = apikeys.rotate_key(connection)
        except apikeys.NotAnApiConnection as error:
            raise CommandError(str(error)) from None
        if not connection.active:
            self.stderr.write(
                f"Note: {connection} is inactive; the key works once it is active again."
            )
        # Only the key on stdout, so scripts can capture it.
        self.stdout.write(key)
