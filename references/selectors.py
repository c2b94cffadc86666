"""Read side of the References page: the table's rows, its orderings, counts and paging.

A row of the table is a source RemoteId of the entity type (so unlinked records, which the
source knows and the target does not, are rows too), with the target id/ref of the same record
joined in by a correlated subquery and the record's modified/version columns by a join:
`base_reference_rows`. The filters that narrow and order those rows are
`references.filters.ReferenceFilterSet`, the one query the page and the CSV export share.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from common.paging import Keyset, parse_int, parse_str
from records.models import Batch, RemoteId
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
BANNER_HOURS = 24  # how long a delete-all's Restore banner stays on its tab


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
