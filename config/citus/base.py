"""The `citus://` database backend: PostgreSQL's, with a test database made on every node."""

from django.db.backends.postgresql import base

from .creation import DatabaseCreation


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation
