"""Paging for the list pages: by page number, or by keyset (a row's position).

    page, after, before = paged(rows, keyset, number, size, after=token, locate=locate)

The keysets themselves (which columns a list orders by) live with the lists that use them, and
so do their `locate` functions (where a numbered page starts, read from one index).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Q

from .errors import InvalidValue


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
# The highest page number a URL is taken at: ?page=99999999999999999999 would otherwise be an
# OFFSET no database integer holds (an error, a 500). A billion pages is past the end of any
# list, which the page then says.
MAX_PAGE_NUMBER = 1_000_000_000


def page_number(number: int) -> int:
    return min(max(1, number), MAX_PAGE_NUMBER)


def page_of(rows, number: int, size: int) -> Page:
    """One page without counting the set: fetch size + 1 rows to know whether a next exists."""
    number = page_number(number)
    offset = (number - 1) * size
    fetched = list(rows[offset : offset + size + 1])
    return Page(rows=fetched[:size], number=number, size=size, has_next=len(fetched) > size)


# --- keyset paging --------------------------------------------------------------------------
#
# "Next" and "Previous" carry the position of the last (first) row of the page instead of an
# OFFSET: PostgreSQL then starts the index walk right there, so page 3,500 of a million rows
# costs what page 1 costs, and a row added or deleted meanwhile never makes the next page
# repeat or skip one. The page number still travels in the URL, for "Showing 175,001-175,050".
# Search results page by number only: they are ordered by match rank first.


def parse_moment(value):
    """An aware datetime from its ISO text; None for anything else."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def parse_hex32(value):
    """A 32-hex id (a record's local_id, a connection_id); None for anything else."""
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) else None


def parse_str(value):
    return value if isinstance(value, str) else None


def parse_int(value):
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


# --- numbered pages ---------------------------------------------------------------------------
#
# A page opened by its number (a bookmark, a typed ?page=3500) has no position to seek from.
# OFFSET over the page's own query computed every skipped row in full: at page 3,500 of
# 350,000 orders, the References query ran its two target subqueries 175,000 times each and
# sorted the wide rows (2.4 s). Two cheaper ways to the same rows:
# - `locate`: the list knows an index holding exactly its rows in the page's order; an OFFSET
#   over that index alone reads index entries only (20-60 ms for 175,000) and gives the
#   position of the row before the page, from which the page is fetched by keyset, as "Next"
#   fetches it;
# - otherwise the OFFSET runs over the rows' ids only (no subqueries, narrow rows to sort),
#   and the page's rows are then read by id.
# Both give exactly the rows OFFSET (N - 1) * size would.


@dataclass(frozen=True)
class Located:
    """What a list's `locate(offset)` found: the keyset position of its row at `offset`, or
    None when the list has no row there (the page asked for is past the last one)."""

    position: tuple | None


def numbered_page(rows, keyset: Keyset | None, number: int, size: int, *, locate=None) -> Page:
    """Page `number` of `rows`: the rows OFFSET (number - 1) * size would give.

    `locate(offset)` returns a Located from an index, or None when it cannot (then the ids'
    OFFSET is used); it is asked only when `keyset` is given, and `rows` must then be ordered
    by the keyset's (column, tie).
    """
    number = page_number(number)
    offset = (number - 1) * size
    if offset == 0:
        return page_of(rows, 1, size)
    located = locate(offset - 1) if keyset is not None and locate is not None else None
    if located is None:
        return _page_by_ids(rows, number, size)
    if located.position is None:
        return Page(rows=[], number=number, size=size, has_next=False)
    fetched = list(_past(rows, keyset, located.position, forward=True)[: size + 1])
    return Page(rows=fetched[:size], number=number, size=size, has_next=len(fetched) > size)


def _page_by_ids(rows, number: int, size: int) -> Page:
    """OFFSET over the rows' ids alone, then the page's rows by id (in the ids' order)."""
    offset = (number - 1) * size
    ids = list(rows.values_list("pk", flat=True)[offset : offset + size + 1])
    by_id = {row.pk: row for row in rows.order_by().filter(pk__in=ids)} if ids else {}
    fetched = [by_id[pk] for pk in ids if pk in by_id]  # one deleted meanwhile is left out
    return Page(rows=fetched[:size], number=number, size=size, has_next=len(ids) > size)


def paged(rows, keyset: Keyset | None, number: int, size: int, *, after="", before="", locate=None):
    """A page by position when the request carries a usable one, else by number
    (`numbered_page`, with the list's `locate` if it has one).

    Returns (page, after, before): the positions actually used, for the page's own URL.
    """
    number = page_number(number)
    page = None
    if keyset is not None and (after or before):
        page = keyset_page(rows, keyset, number, size, after=after, before="" if after else before)
    if page is not None:
        return page, after, "" if after else before
    page = numbered_page(rows, keyset, number, size, locate=locate)
    if keyset is not None:
        with_positions(page, keyset)
    return page, "", ""


# --- the delta feed's cursor ----------------------------------------------------------------
#
# The API's delta feed (records.services.changed_records) gives each page's last record as an
# opaque `nextCursor`; the client sends it back as `cursor`. Where the database tells which
# transaction wrote a row (PostgreSQL), the feed is ordered by that transaction, then by row
# id, and hands out only what transactions that have ended wrote: then no transaction that
# commits later can add a row before a cursor already given. Elsewhere (SQLite: one writer at
# a time) the order is (lastModified, localId).


@dataclass(frozen=True)
class FeedPosition:
    """The last record a feed page gave: (transaction, row id) in a feed ordered by
    transaction, else (modified, local_id)."""

    transaction: int | None = None
    row_id: int | None = None
    modified: datetime | None = None
    local_id: str = ""

    @property
    def by_transaction(self) -> bool:
        return self.transaction is not None


INVALID_CURSOR = "This cursor is not one the API gave out."
TRANSACTION_MARK = "x"


def encode_feed_cursor(position: FeedPosition) -> str:
    """Opaque to clients: base64 of `x|transaction|rowId` or `lastModified|localId`."""
    if position.by_transaction:
        raw = f"{TRANSACTION_MARK}|{position.transaction}|{position.row_id}"
    else:
        raw = f"{position.modified.astimezone(UTC).isoformat()}|{position.local_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _is_bigint(text: str) -> bool:
    """ASCII digits that fit a bigint column (`"²".isdigit()` is true; int() refuses it)."""
    return re.fullmatch(r"[0-9]{1,18}", text) is not None


def decode_feed_cursor(cursor: str) -> FeedPosition:
    """The position a cursor names; InvalidValue (on `cursor`) for one the API did not give."""
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        parts = []
    if len(parts) == 3 and parts[0] == TRANSACTION_MARK and all(map(_is_bigint, parts[1:])):
        return FeedPosition(transaction=int(parts[1]), row_id=int(parts[2]))
    moment = parse_moment(parts[0]) if len(parts) == 2 else None
    if moment is None or parse_hex32(parts[1]) is None:
        raise InvalidValue(INVALID_CURSOR, field="cursor")
    return FeedPosition(modified=moment, local_id=parts[1])


def feed_after(rows, position: FeedPosition, *, by_transaction: bool):
    """The rows past `position` in the feed's order: (change_xid, id) when `by_transaction`,
    else (last_modified, local_id). The redundant >= lets the index range-scan; the OR is the
    tie-break."""
    if by_transaction and position.by_transaction:
        xid = position.transaction
        return rows.filter(change_xid__gte=xid).filter(
            Q(change_xid__gt=xid) | Q(change_xid=xid, pk__gt=position.row_id)
        )
    if by_transaction:
        # A cursor given before the feed was ordered by transaction: resume at its time
        # (what changed at that very time comes again).
        return rows.filter(last_modified__gte=position.modified)
    if position.by_transaction:
        raise InvalidValue(INVALID_CURSOR, field="cursor")
    moment, local_id = position.modified, position.local_id
    return rows.filter(last_modified__gte=moment).filter(
        Q(last_modified__gt=moment) | Q(last_modified=moment, local_id__gt=local_id)
    )
