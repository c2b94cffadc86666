"""Read side of the References page: the table's rows, its orderings, counts and paging.

A row of the table is a source RemoteId of the entity type (so unlinked records, which the
source knows and the target does not, are rows too), with the target id/ref of the same record
joined in by a correlated subquery and the record's modified/version columns by a join:
`base_reference_rows`. The filters that narrow and order those rows are
`references.filters.ReferenceFilterSet`, the one query the page and the CSV export share.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import OperationalError, transaction
from django.db import connection as db_connection
from django.db.models import OuterRef, Q, Subquery

from records.models import RemoteId

LINKED_CHOICES = (
    ("all", "All"),
    ("linked", "Linked"),
    ("unlinked", "Unlinked"),
    # Unlinked, split by their history (references.health): linked before, or never.
    ("lost", "Lost"),
    ("never", "Never linked"),
)
# sort value -> ORDER BY; every ordering ends with a unique tie-breaker (one source row per
# record), so pages never skip or repeat rows.
# The modified sorts break ties on the record's local id so that the whole ORDER BY is
# record_delta_sync_idx (tenant, record_type, last_modified, local_id): PostgreSQL reads one
# page from it and stops. With record_id as the tie-break it may prefer the single-column
# last_modified index and filter, which after a delete-all of another tab's 256k records
# walked past all of them (78 ms instead of 1.4 ms at a million).
SORTS = {
    "-modified": ("-record__last_modified", "-record__local_id"),
    "modified": ("record__last_modified", "record__local_id"),
    "source": ("remote_id", "record_id"),
    "-source": ("-remote_id", "-record_id"),
}
SORT_CHOICES = (
    ("-modified", "Newest first"),
    ("modified", "Oldest first"),
    ("source", "Source id A-Z"),
    ("-source", "Source id Z-A"),
)
DEFAULT_SORT = "-modified"
# Counts above this are not counted exactly on every page view (see capped_count). Counting
# 10,000 rows of a semi-join costs 100-450 ms at a million references; 1,000 costs a tenth.
COUNT_CAP = 1_000
# SQLite has no planner estimate to fall back on, and as the embedded default it holds small
# tenants: count exactly further there rather than show "1,000+" for 1,433 rows.
SQLITE_COUNT_CAP = 100_000
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by its timeout


def target_rows(integration):
    """The target's row of the outer row's record: for correlated subqueries (Exists, Subquery)."""
    return RemoteId.objects.for_tenant(integration.tenant).filter(
        connection=integration.target, record_id=OuterRef("record_id")
    )


def base_reference_rows(integration, record_type: str):
    """Every source row of one entity type, with its target id/ref (None when unlinked)."""
    target = target_rows(integration)
    return (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection=integration.source, record_type=record_type)
        # Redundant (a remote id's type and tenant are its record's), but it lets PostgreSQL
        # walk record_delta_sync_idx (tenant, record_type, last_modified) newest first and
        # stop after one page, instead of walking every type's records by last_modified.
        .filter(record__tenant=integration.tenant, record__record_type=record_type)
        .select_related("record")
        .defer("record__data")
        .annotate(
            target_remote_id=Subquery(target.values("remote_id")[:1]),
            target_remote_ref=Subquery(target.values("remote_ref")[:1]),
        )
    )


def matched_side(row, q: str) -> str:
    """Which value of a row the search matched, e.g. "target ref" (exact before substring)."""
    q = (q or "").strip()
    if not q:
        return ""
    values = (
        ("source id", row.remote_id),
        ("source ref", row.remote_ref),
        ("target id", row.target_remote_id),
        ("target ref", row.target_remote_ref),
    )
    for label, value in values:
        if value and value == q:
            return label
    folded = q.casefold()
    for label, value in values:
        if value and folded in value.casefold():
            return label
    return ""


@dataclass(frozen=True)
class Count:
    """A count for display: exact, or a lower bound / estimate when the set is large."""

    value: int
    exact: bool = True
    at_least: bool = False  # not estimated either: "more than value"

    def __int__(self) -> int:
        return self.value


# The most a count may cost on PostgreSQL before the page shows the planner's estimate instead.
# Counting up to COUNT_CAP rows is usually a few milliseconds, but when the planner misjudges
# an anti-join (the unlinked count) it can walk the whole table: 350 ms at a million.
COUNT_TIMEOUT_MS = 40
# Above this many times the cap, the planner's estimate is trusted without counting. Estimates
# of anti-joins (the unlinked count) run low, 7,600 for a real 17,700 at a million: with 10x
# that count took the slow exact path on every page view.
ESTIMATE_OVER_CAP = 2
# Below this planner cost (PostgreSQL's units: 1 per page read, 0.01 per row) a count is a few
# milliseconds at most and runs without the timeout's extra round trips; small tenants, whose
# every count is exact, would otherwise pay them six times per page.
CHEAP_COUNT_COST = 10_000


def capped_count(queryset, cap: int | None = None) -> Count:
    """Count exactly up to `cap` rows (bounded work); beyond it estimate.

    On PostgreSQL the estimate is the planner's row estimate (EXPLAIN, no scan), also used
    when a count the planner thinks costly takes longer than COUNT_TIMEOUT_MS; elsewhere it is
    the cap itself, shown as "about"/"more than".
    """
    if cap is None:
        cap = COUNT_CAP if db_connection.vendor == "postgresql" else SQLITE_COUNT_CAP
    rows = queryset.order_by().values("pk")[: cap + 1]
    if db_connection.vendor != "postgresql":
        counted = rows.count()
        return Count(counted) if counted <= cap else Count(cap, exact=False, at_least=True)
    plan = _plan(queryset)
    if plan.rows > ESTIMATE_OVER_CAP * cap:
        # Clearly large: the estimate is the answer (one EXPLAIN, no scan at all).
        return Count(plan.rows, exact=False)
    if plan.cost_of_first(cap + 1) <= CHEAP_COUNT_COST:
        counted = rows.count()  # small tables: a plain count, no timeout round trips
    else:
        counted = _count_within(rows, COUNT_TIMEOUT_MS)
        if counted is None:
            return Count(max(plan.rows, 1), exact=False)
    if counted <= cap:
        return Count(counted)
    return Count(max(plan.rows, cap + 1), exact=False)


def _count_within(rows, timeout_ms: int) -> int | None:
    """rows.count(), or None when PostgreSQL needs longer than timeout_ms for it."""
    nested = db_connection.in_atomic_block
    try:
        # In a transaction of its own (or a savepoint): the timeout ends with it, and a
        # cancelled count leaves any surrounding transaction usable.
        with transaction.atomic(), db_connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            counted = rows.count()
            if nested:  # a released savepoint would keep SET LOCAL to the end of the outer one
                cursor.execute("SET LOCAL statement_timeout = DEFAULT")
            return counted
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED:
            return None
        raise


@dataclass(frozen=True)
class _Plan:
    rows: int
    startup_cost: float
    total_cost: float

    def cost_of_first(self, n: int) -> float:
        """The planner's cost of reading the first n rows (what a LIMIT n count pays)."""
        share = min(1.0, n / max(self.rows, 1))
        return self.startup_cost + (self.total_cost - self.startup_cost) * share


def _plan(queryset) -> _Plan:
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with db_connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # psycopg may hand back text
        plan = json.loads(plan)
    top = plan[0]["Plan"]
    return _Plan(int(top["Plan Rows"]), float(top["Startup Cost"]), float(top["Total Cost"]))


@dataclass
class Page:
    rows: list
    number: int
    size: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def first_position(self) -> str:
        return self.rows[0].position if self.rows and hasattr(self.rows[0], "position") else ""

    @property
    def last_position(self) -> str:
        return self.rows[-1].position if self.rows and hasattr(self.rows[-1], "position") else ""

    @property
    def start(self) -> int:
        return (self.number - 1) * self.size + 1 if self.rows else 0

    @property
    def end(self) -> int:
        return (self.number - 1) * self.size + len(self.rows)


# The page sizes a list offers (References and Records pages alike).
PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50


def page_of(rows, number: int, size: int) -> Page:
    """One page without counting the set: fetch size + 1 rows to know whether a next exists."""
    number = max(1, number)
    offset = (number - 1) * size
    fetched = list(rows[offset : offset + size + 1])
    return Page(rows=fetched[:size], number=number, size=size, has_next=len(fetched) > size)


# --- keyset paging --------------------------------------------------------------------------
#
# "Next" and "Previous" carry the position of the last (first) row of the page instead of an
# OFFSET: PostgreSQL then starts the index walk right there, so page 3,500 of a million rows
# costs what page 1 costs (OFFSET 175,000 walked and threw away 175,000 rows: 2.3 s), and a row
# added or deleted meanwhile never makes the next page repeat or skip one. The page number
# still travels in the URL, for "Showing 175,001-175,050". Search results keep OFFSET paging:
# they are ordered by match rank first and are short.


def _parse_moment(value):
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def _parse_local_id(value):
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) else None


def _parse_str(value):
    return value if isinstance(value, str) else None


def _parse_int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Keyset:
    """An ordering that paging can seek in: a column, then a tie-break unique among the rows."""

    name: str  # in every token, so a token of another ordering is refused
    column: str
    tie: str
    descending: bool
    values: Callable  # row -> (column value, tie value), JSON-ready
    parse_value: Callable  # JSON -> column value, or None
    parse_tie: Callable  # JSON -> tie value, or None


def _modified_keyset(name: str, descending: bool, *, record: str = "record__") -> Keyset:
    def values(row):
        record_of_row = row.record if record else row
        return record_of_row.last_modified.isoformat(), record_of_row.local_id

    return Keyset(
        name, f"{record}last_modified", f"{record}local_id", descending, values,
        _parse_moment, _parse_local_id,
    )  # fmt: skip


def _source_keyset(name: str, descending: bool) -> Keyset:
    return Keyset(
        name, "remote_id", "record_id", descending, lambda row: (row.remote_id, row.record_id),
        _parse_str, _parse_int,
    )  # fmt: skip


# The References table's sorts (the same orderings as SORTS).
KEYSETS = {
    "-modified": _modified_keyset("-modified", True),
    "modified": _modified_keyset("modified", False),
    "source": _source_keyset("source", False),
    "-source": _source_keyset("-source", True),
}
# The Records list: newest first, local_id as the tie-break (record_delta_sync_idx).
RECORDS_KEYSET = _modified_keyset("records", True, record="")


def row_position(row, keyset: Keyset) -> str:
    """An opaque, URL-safe token of where `row` sits in the keyset's order."""
    raw = json.dumps([keyset.name, *keyset.values(row)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_position(token: str, keyset: Keyset):
    """(column value, tie value) from a token of this keyset; None for anything else."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):  # bad base64, bad UTF-8 and bad JSON are all ValueErrors
        return None
    if not (isinstance(data, list) and len(data) == 3 and data[0] == keyset.name):
        return None
    value, tie = keyset.parse_value(data[1]), keyset.parse_tie(data[2])
    return None if value is None or tie is None else (value, tie)


def _past(rows, keyset: Keyset, position, *, forward: bool):
    """The rows strictly after `position` in the keyset's order (forward) or strictly before."""
    op = "lt" if keyset.descending == forward else "gt"
    value, tie = position
    column = keyset.column
    # The redundant lte/gte lets the index range-scan; the OR breaks ties.
    return rows.filter(**{f"{column}__{op}e": value}).filter(
        Q(**{f"{column}__{op}": value}) | Q(**{column: value, f"{keyset.tie}__{op}": tie})
    )


def _reversed_ordering(rows):
    return [name[1:] if name.startswith("-") else f"-{name}" for name in rows.query.order_by]


def keyset_page(
    rows, keyset: Keyset, number: int, size: int, *, after="", before=""
) -> Page | None:
    """The page after (or before) a position token; None when the token is not usable here.

    `rows` must be ordered by (column, tie) in the keyset's direction.
    """
    position = parse_position(after or before, keyset)
    if position is None:
        return None
    if after:
        fetched = list(_past(rows, keyset, position, forward=True)[: size + 1])
        page = Page(
            rows=fetched[:size], number=max(2, number), size=size, has_next=len(fetched) > size
        )
    else:
        backwards = _past(rows, keyset, position, forward=False).order_by(*_reversed_ordering(rows))
        fetched = list(backwards[: size + 1])
        if len(fetched) <= size:
            # Back at the start: page 1 exactly as a fresh load shows it.
            return with_positions(page_of(rows, 1, size), keyset)
        page = Page(rows=fetched[:size][::-1], number=max(2, number), size=size, has_next=True)
    return with_positions(page, keyset)


def with_positions(page: Page, keyset: Keyset) -> Page:
    for row in page.rows:
        row.position = row_position(row, keyset)
    return page


def paged(rows, keyset: Keyset | None, number: int, size: int, *, after="", before=""):
    """A page by position when the request carries a usable one, else by number.

    Returns (page, after, before): the positions actually used, for the page's own URL.
    """
    page = None
    if keyset is not None and (after or before):
        page = keyset_page(rows, keyset, number, size, after=after, before="" if after else before)
    if page is not None:
        return page, after, "" if after else before
    page = page_of(rows, number, size)
    if keyset is not None:
        with_positions(page, keyset)
    return page, "", ""
