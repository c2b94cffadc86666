"""Read side of the References page: the table's rows, its orderings, counts and paging.

A row of the table is a source RemoteId of the entity type (so unlinked records, which the
source knows and the target does not, are rows too), with the target id/ref of the same record
joined in by a correlated subquery and the record's modified/version columns by a join:
`base_reference_rows`. The filters that narrow and order those rows are
`references.filters.ReferenceFilterSet`, the one query the page and the CSV export share.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.db.models import Subquery
from django.utils import timezone

from common.paging import Keyset, Located, parse_int, parse_str
from records.models import Batch, Record, RemoteId
from records.queries import modified_keyset, record_at, target_row

LINKED_CHOICES = (
    ("all", "All"),
    ("linked", "Linked"),
    ("unlinked", "Unlinked"),
    # Unlinked, split by their history (references.findings): linked before, or never.
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
BANNER_HOURS = 24  # how long a delete-all's Restore banner stays on its tab


def base_reference_rows(integration, record_type: str):
    """Every source row of one entity type, with its target id/ref (None when unlinked)."""
    target = target_row(integration)
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


def _source_keyset(name: str, descending: bool) -> Keyset:
    return Keyset(
        name, "remote_id", "record_id", descending, lambda row: (row.remote_id, row.record_id),
        parse_str, parse_int,
    )  # fmt: skip


# The References table's sorts (the same orderings as SORTS).
KEYSETS = {
    "-modified": modified_keyset("-modified", True),
    "modified": modified_keyset("modified", False),
    "source": _source_keyset("source", False),
    "-source": _source_keyset("-source", True),
}


# --- where a numbered page of the unfiltered tab starts ----------------------------------------
#
# common.paging.numbered_page asks `locate(offset)` for the position of the tab's row at
# `offset`, then fetches the page by keyset from there. The answer must come from an index that
# holds exactly the tab's rows (every source row of the type) in the page's order:
# - Source id: the unique index (tenant, connection, record_type, remote_id) is exactly that,
#   and a source id is unique in the tab, so record_id never breaks a tie. Index-only.
# - Modified: no index holds the tab's rows by their record's last_modified. The record index
#   (record_delta_sync_idx) holds every record of the type, and the type may have records the
#   tab does not show (only the target knows them: a duplicate a sync made; or only another
#   connection of the tenant); with one of those among the skipped rows its OFFSET lands too
#   far. So it is used only when the type has no such record, which the walks below prove;
#   otherwise the page comes from the row query's ids (numbered_page's fallback).
# Filtered tabs (a search, Linked, Modified on or after) have no such index: they take the
# fallback too.

# The proof walks two index entries per row of the tab (~0.2 µs each at 1M, 0.4 µs a row); the
# row query's ids skip rows at ~15-30 µs each (a join probe per row, or one hash join of the
# tab). So from an offset of a 30th of the tab on the proof costs less (at 350,000 rows: from
# page 235 on, at 50 a page).
PROOF_PAYS_FROM = 30


def source_rows(integration, record_type: str):
    """The tab's rows without their record: the integration's source ids of the type."""
    return RemoteId.objects.for_tenant(integration.tenant).filter(
        connection=integration.source, record_type=record_type
    )


def tab_locator(integration, record_type: str, sort: str, tab_size: Callable[[], int]):
    """`locate(offset)` for the unfiltered tab in `sort` (common.paging.numbered_page).

    `tab_size()` gives the tab's kept count (linked + unlinked), asked only when needed: the
    proof below takes it as a claim to check, not as a fact.
    """
    descending = sort.startswith("-")

    def by_source_id(offset: int) -> Located:
        ids = source_rows(integration, record_type)
        at = ids.order_by("-remote_id" if descending else "remote_id").values("remote_id")
        found = ids.filter(remote_id=Subquery(at[offset : offset + 1]))
        row = found.values_list("remote_id", "record_id").first()
        return Located(tuple(row) if row else None)

    def by_modified(offset: int) -> Located | None:
        size = tab_size()
        if offset * PROOF_PAYS_FROM < size:
            return None
        records = Record.objects.for_tenant(integration.tenant).filter(record_type=record_type)
        at = record_at(records, offset, descending=descending)
        if offset >= size:
            # Past the end by the kept count. The tab has no more rows than the type has
            # records, so no record there proves it; a record there proves nothing.
            return at if at.position is None else None
        # The type has exactly `size` records when the record `offset` from one end is
        # `size - 1 - offset` from the other (two walks that add up to one pass over them);
        # each tab row is a distinct record of the type (one source id per record), so with
        # at least `size` tab rows the tab's records are all of them.
        if at.position is None or at != record_at(
            records, size - 1 - offset, descending=not descending
        ):
            return None
        tab = source_rows(integration, record_type).order_by("remote_id").values("remote_id")
        return at if list(tab[size - 1 : size]) else None

    return by_source_id if sort in ("source", "-source") else by_modified


def restorable_delete_alls(tenant, integration, record_type: str, since=None):
    """A tab's delete-alls of the last day not yet restored, newest first; `integration` may
    be an OuterRef."""
    return (
        Batch.objects.for_tenant(tenant)
        .filter(
            integration=integration,
            record_type=record_type,
            kind=Batch.Kind.DELETE_ALL,
            restored_at__isnull=True,
            created_at__gte=since or timezone.now() - timedelta(hours=BANNER_HOURS),
            row_count__gt=0,
        )
        .order_by("-created_at", "-pk")
    )
