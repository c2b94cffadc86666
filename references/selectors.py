"""Read side of the References page: the ONE query behind the table (and the CSV export).

A row of the table is a source RemoteId of the entity type (so unlinked records, which the
source knows and the target does not, are rows too), with the target id/ref of the same record
joined in by a correlated subquery and the record's modified/version columns by a join.

    reference_rows(integration, "order", q="5001", linked="unlinked", sort="-modified")

Everything that filters or orders the table lives here, so the export (issue 6) exports exactly
what the page shows and the performance work (issue 7) has one place to optimise.
"""

from __future__ import annotations

from django.db.models import Case, Exists, IntegerField, OuterRef, Q, Subquery, Value, When

from common.paging import Keyset, parse_int, parse_str
from records.counts import is_lost
from records.models import RemoteId
from records.queries import modified_keyset

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


def _target_rows(integration):
    return RemoteId.objects.for_tenant(integration.tenant).filter(
        connection=integration.target, record_id=OuterRef("record_id")
    )


def base_reference_rows(integration, record_type: str):
    """Every source row of one entity type, with its target id/ref (None when unlinked)."""
    target = _target_rows(integration)
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


def filter_linked(rows, integration, linked: str):
    if linked == "linked":
        return rows.filter(Exists(_target_rows(integration)))
    if linked in ("unlinked", "lost", "never"):
        rows = rows.filter(~Exists(_target_rows(integration)))
    if linked == "lost":
        return rows.filter(is_lost(integration))
    if linked == "never":
        return rows.exclude(is_lost(integration))
    return rows


def search(rows, integration, q: str):
    """Source or target id or ref: exact matches first, then substring (case-insensitive)."""
    q = (q or "").strip()
    if not q:
        return rows
    target = _target_rows(integration)
    exact = (
        Q(remote_id=q) | Q(remote_ref=q) | Exists(target.filter(Q(remote_id=q) | Q(remote_ref=q)))
    )
    # The records whose source or target id or ref contains q, from one scan of the remote
    # ids of both connections: on PostgreSQL a BitmapOr of the two trigram indexes
    # (records/migrations/0002_remoteid_trigram_indexes.py). The same test written per row
    # (OR EXISTS(target ...)) cannot use them and scans every source row: 2 s at 1M.
    matching = (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection__in=[integration.source_id, integration.target_id])
        .filter(Q(remote_id__icontains=q) | Q(remote_ref__icontains=q))
    )
    return rows.filter(record_id__in=matching.values("record_id")).annotate(
        match_rank=Case(When(exact, then=Value(0)), default=Value(1), output_field=IntegerField())
    )


def reference_rows(
    integration,
    record_type: str,
    *,
    q: str = "",
    linked: str = "all",
    modified_after=None,
    sort: str = DEFAULT_SORT,
):
    """The filtered, ordered rows of the References table (a lazy queryset of source RemoteIds).

    Each row has `.record` (local_id, last_modified, last_modified_by, version),
    `.remote_id`/`.remote_ref` (source side) and `.target_remote_id`/`.target_remote_ref`.
    """
    rows = base_reference_rows(integration, record_type)
    rows = filter_linked(rows, integration, linked)
    if modified_after is not None:
        rows = rows.filter(record__last_modified__gte=modified_after)
    rows = search(rows, integration, q)
    ordering = SORTS.get(sort, SORTS[DEFAULT_SORT])
    if (q or "").strip():
        ordering = ("match_rank", *ordering)
    return rows.order_by(*ordering)


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
