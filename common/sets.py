"""Filtering a queryset by a big set of values without a statement per chunk.

On PostgreSQL the values go as one array parameter, joined as a set:
`column IN (SELECT unnest(%s::bigint[]))`. One statement for any size (100 chunked IN queries
of 2,000 parameters each took 2-4 s of a 100k-row import's plan, most of it building and
sending the parameters), planned as a join the planner knows the size of. Not `= ANY(%s)`:
where that ends up as a filter instead of an index condition it is a linear search of the
array for every row, and with statistics that had not seen a bulk job's rows it did: 256k rows
x 270k values, 240 s. SQLite has no arrays and a limit on parameters: there the values go in
chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db import connection as db_connection
from django.db.models.expressions import RawSQL

CHUNK = 2000


def chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def one_of(values: Iterable):
    """The right side of an `__in` for at most CHUNK values (ints or texts): on PostgreSQL the
    values as one array parameter joined as a set (the module's docstring says why; a
    statement of 500 parameters also cost psycopg more to build than the database took to
    run it), elsewhere the list."""
    values = sorted(set(values))
    if db_connection.vendor != "postgresql" or not values:
        return values
    array_type = "bigint[]" if isinstance(values[0], int) else "text[]"
    return RawSQL(f"SELECT unnest(%s::{array_type})", [values])  # noqa: S611 (our type names)


def where_in(queryset, field_name: str, values: Iterable) -> Iterator:
    """`queryset` narrowed to rows whose `field_name` is one of `values`: one queryset on
    PostgreSQL, one per chunk elsewhere (iterate and combine what each returns)."""
    values = sorted(set(values))
    if not values:
        return
    if db_connection.vendor == "postgresql" and len(values) > CHUNK:
        yield queryset.filter(**{f"{field_name}__in": one_of(values)})
        return
    for chunk in chunks(values):
        yield queryset.filter(**{f"{field_name}__in": chunk})
