"""One-to-many reads inside one query: a correlated queryset's rows as a JSON array.

A record's remote ids and custom data are one `prefetch_related` query each; the API reads
one record per request, so those two queries were half of its work. `json_rows` brings them
in the record's own query instead, as JSON built by the database (JSONB_AGG on PostgreSQL,
JSON_GROUP_ARRAY on SQLite), so a read is the key check and one query.
"""

from __future__ import annotations

from django.db.models import Aggregate, Func, JSONField, Subquery
from django.db.models.functions import JSONObject


class JSONArrayAgg(Aggregate):
    """The aggregated values as one JSON array, on PostgreSQL and SQLite alike."""

    function = "JSON_GROUP_ARRAY"
    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSONB_AGG", **extra_context)


class AsJSON(Func):
    """A JSON column inside JSONObject: nested as JSON, not as a string holding JSON.

    SQLite stores JSON as text and json_object() would quote it; JSON() marks it as JSON.
    PostgreSQL's jsonb nests as it is."""

    output_field = JSONField()
    template = "%(expressions)s"

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="JSON(%(expressions)s)")


def json_rows(queryset, *, by: str, **fields) -> Subquery:
    """The rows of `queryset` (filtered on an OuterRef, e.g. record=OuterRef("pk")) as a JSON
    array of objects with `fields` (name -> field path or expression); None when no row.
    `by` is the field that ties the rows to the outer row, e.g. "record"."""
    return Subquery(
        queryset.order_by()
        .values(by)
        .annotate(rows=JSONArrayAgg(JSONObject(**fields)))
        .values("rows"),
        output_field=JSONField(),
    )
