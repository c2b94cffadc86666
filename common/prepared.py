"""Querysets whose SQL is built once per process: each use only binds new values.

Building a queryset and compiling it to SQL is Django's slowest step on a hot path: the API's
record read (remote ids and custom data as JSON rows, recordSource joined) costs 2 to 3 ms of
CPU to compile and 0.1 ms to run, so compiling dominated every API request. A prepared query
builds its queryset once, with stand-in values, compiles it once, and afterwards runs the same
SQL with the request's values in place of the stand-ins, turning rows into model instances
with Django's own iterable (select_related, annotations and field converters included).

    record_by_remote_id = PreparedQuery(
        lambda tenant_id, remote_id: Record.objects.filter(tenant_id=tenant_id, ...)
    )
    record = record_by_remote_id.first(tenant_id=3, remote_id="WH-1")

Values are ints, strings or aware datetimes (what the stand-ins can stand for); anything that
changes the SQL's shape is not a value. A time goes in as a value (`since=now - 24 h`), not as
database arithmetic (`Now() - interval`): on SQLite that arithmetic calls back into Python
from inside the query, which deadlocks when test threads share one in-memory connection.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import connections
from django.db.models import QuerySet

# A stand-in must never equal a value the query holds of its own: strings carry NUL bytes
# (which no real parameter here contains), ints are far below any id or count, and times are
# microseconds after 1900-01-01.
_STAND_IN_INT_BASE = -7_000_000_000_000
_STAND_IN_TIME_BASE = datetime(1900, 1, 1, tzinfo=UTC)


def _stand_in(name: str, kind: type, number: int):
    if kind is int:
        return _STAND_IN_INT_BASE - number
    if kind is datetime:
        return _STAND_IN_TIME_BASE + timedelta(microseconds=number + 1)
    return f"\x00stand-in:{name}\x00"


def _as_parameter(value, using: str):
    """A value as the backend puts it among a query's parameters (a time as its adapter
    makes it: a naive UTC string on SQLite, the datetime itself on PostgreSQL)."""
    if isinstance(value, datetime):
        return connections[using].ops.adapt_datetimefield_value(value)
    return value


def _plain(name: str, value):
    if isinstance(value, bool) or not isinstance(value, int | str | datetime):
        raise TypeError(f"{name}: a prepared query binds ints, strings and times only")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(f"{name}: a time must be aware")
        return value
    # A TextChoices member (a str) binds as its value.
    return int(value) if isinstance(value, int) else str(value)


class PreparedQuery:
    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        self._compiled: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def _compile(self, using: str, kinds: dict[str, type]):
        key = (using, connections[using].vendor, tuple(sorted(kinds.items())))
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile_now(using, kinds)
                self._compiled[key] = compiled
        return compiled

    def _compile_now(self, using: str, kinds: dict[str, type]):
        stand_ins = {
            name: _stand_in(name, kind, number)
            for number, (name, kind) in enumerate(sorted(kinds.items()))
        }
        queryset = self.build(**stand_ins).using(using)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()  # also sets compiler.select, klass_info, annotations
        names = {_as_parameter(value, using): name for name, value in stand_ins.items()}
        slots = [
            names.get(param) if isinstance(param, int | str | datetime) else None
            for param in params
        ]
        found = {name for name in slots if name is not None}
        if found != set(stand_ins):
            # A value was transformed on its way into the SQL (cast, lowercased...): it could
            # not be bound later, so refuse rather than run with a stand-in.
            raise ValueError(f"Values not found as parameters: {set(stand_ins) - found}")
        return queryset, compiler, sql, params, slots

    def all(self, using: str = "default", **values) -> list:
        values = {name: _plain(name, value) for name, value in values.items()}
        kinds = {name: type(value) for name, value in values.items()}
        queryset, compiler, sql, params, slots = self._compile(using, kinds)
        bound = [
            _as_parameter(values[slot], using) if slot is not None else param
            for slot, param in zip(slots, params, strict=True)
        ]
        # A copy per use: threads share the compiled one, and it must run on this thread's
        # connection.
        run = copy.copy(compiler)
        run.connection = connections[using]

        def execute_sql(*args, **kwargs):
            with statement_cursor(using) as cursor:
                cursor.execute(sql, bound)
                return [cursor.fetchall()]

        run.execute_sql = execute_sql
        query = copy.copy(queryset.query)
        query.get_compiler = lambda *args, **kwargs: run
        rows = queryset._chain()
        rows.query = query
        return list(rows._iterable_class(rows))

    def first(self, using: str = "default", **values):
        found = self.all(using, **values)
        return found[0] if found else None


def statement_cursor(using: str = "default"):
    """A cursor whose statements PostgreSQL parses and plans once per database session.

    Django's cursors bind values on the client (the statement goes as text with the values
    in it), so PostgreSQL parses, analyses and plans every statement anew: for the API's
    record body (records.bodies) that was 1.2 ms of a 1.4 ms query, several times what running
    it costs. This cursor binds on the server, and psycopg prepares a statement on its first
    run; afterwards each run in that session only binds the values (a generic plan, once
    PostgreSQL finds it as good as the custom ones). For the API's hot statements: the
    prepared queries here and the record bodies.

    Through PgBouncer in transaction mode (DATABASE_POOLER) a session is lent out per
    transaction, so a statement prepared in one may be missing in the next: there, on SQLite
    and while queries are logged, it is Django's ordinary cursor. Otherwise it is Django's
    cursor wrapper as ever (the health check, errors as Django's, the execute wrappers), only
    over a server-binding cursor.
    """
    db = connections[using]
    if (
        db.vendor != "postgresql"
        or getattr(settings, "DATABASE_POOLER", "") == "pgbouncer"
        # Logging queries (DEBUG, a test counting them): Django logs the SQL it sent with its
        # values, which a server-binding cursor does not keep; the same statement as text.
        or db.queries_logged
    ):
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    if db.connection.prepare_threshold is None:
        # Django turns psycopg's preparing off (None); its own cursors bind on the client,
        # which never prepares, so this turns it on for these cursors only.
        db.connection.prepare_threshold = 0
    with db.wrap_database_errors:
        return db._prepare_cursor(_preparing_cursor_class()(db.connection))


@cache
def _preparing_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        """Prepares each statement on its first run; psycopg keeps the last `prepared_max`
        (100) per session."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            prepare = True if prepare is None else prepare
            return super().execute(query, params, prepare=prepare, binary=binary)

    return PreparingCursor
