"""The `citus://` database backend: PostgreSQL's, with a test database made on every node and
deletions kept within their tenant (compiler.py)."""

from django.db.backends.postgresql import base, operations

from .creation import DatabaseCreation


class DatabaseOperations(operations.DatabaseOperations):
    compiler_module = "config.citus.compiler"


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation
    ops_class = DatabaseOperations
