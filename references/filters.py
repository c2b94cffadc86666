"""The References table's query-string filters (linked, modified_after, q, sort).

A plain django-filter FilterSet: its queryset is every row of one integration and entity
type (`queries.base_reference_rows`), and each filter narrows or orders it the usual way,
so the page, the CSV export and `reference_rows` share this one query:

    filterset = ReferenceFilterSet(request.GET, integration=integration, record_type="order")
    rows = filterset.qs

A filter added the usual way (a declared `CharFilter(field_name=..., lookup_expr=...)` or a
`method=` filter) applies like the others; the rows are source RemoteIds, with the target side
annotated as `target_remote_id` and `target_remote_ref`.

Invalid values (an unknown `linked`, a malformed date) are ignored, not errors: a bookmarked
URL always shows something. django-filter filters with the form's `cleaned_data`, which holds
the valid fields only, so an invalid field is skipped while the valid ones still apply; the
page lists the skipped ones (`common.lists.ListMixin.ignored_params`).
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Case, Exists, IntegerField, Q, Value, When

from records.counts import is_lost
from records.models import RemoteId
from records.queries import target_row

from .queries import (
    DEFAULT_SORT,
    LINKED_CHOICES,
    SORT_CHOICES,
    SORTS,
    base_reference_rows,
)

DEFAULTS = {"q": "", "linked": "all", "modified_after": None, "sort": DEFAULT_SORT}
# Search results come best match first (exact before substring); the chosen sort breaks ties.
MATCH_RANK = "match_rank"


def _ranked(rows, ordering) -> tuple:
    """The ordering, after the match rank when the search ranked the rows."""
    ranked = MATCH_RANK in rows.query.annotations
    return (MATCH_RANK, *ordering) if ranked else tuple(ordering)


class ReferenceFilterSet(django_filters.FilterSet):
    # Declared in the order they narrow the rows (the order of their WHERE clauses); `sort`
    # last, as it only orders. The page's toolbar is its own template, not this form.
    linked = django_filters.ChoiceFilter(
        choices=LINKED_CHOICES, empty_label=None, method="filter_linked"
    )
    modified_after = django_filters.DateTimeFilter(
        field_name="record__last_modified", lookup_expr="gte", label="Modified on or after"
    )
    q = django_filters.CharFilter(
        label="Search",
        method="search",
        widget=forms.TextInput(attrs={"placeholder": "Search source or target id or ref…"}),
    )
    sort = django_filters.ChoiceFilter(choices=SORT_CHOICES, empty_label=None, method="order")

    class Meta:
        model = RemoteId
        fields: list[str] = []

    def __init__(self, data=None, *, integration, record_type: str, **kwargs):
        self.integration = integration
        self.record_type = record_type
        # Ordered by the default sort, so that a missing or invalid `sort` still pages stably.
        rows = base_reference_rows(integration, record_type).order_by(*SORTS[DEFAULT_SORT])
        super().__init__(data, queryset=rows, **kwargs)

    @property
    def params(self) -> dict:
        """The valid filter values, defaults filled in (what the page's links carry on)."""
        cleaned = {}
        if self.is_bound:
            self.form.is_valid()  # cleaned_data then holds the valid fields only
            cleaned = self.form.cleaned_data
        values = dict(DEFAULTS)
        for name in DEFAULTS:
            value = cleaned.get(name)
            if value not in (None, ""):
                values[name] = value.strip() if isinstance(value, str) else value
        return values

    def filter_linked(self, rows, name, value):
        """Linked, unlinked, and the unlinked split by their history (references.findings):
        lost (linked before) or never linked."""
        target = target_row(self.integration)
        if value == "linked":
            return rows.filter(Exists(target))
        if value in ("unlinked", "lost", "never"):
            rows = rows.filter(~Exists(target))
        if value == "lost":
            return rows.filter(is_lost(self.integration))
        if value == "never":
            return rows.exclude(is_lost(self.integration))
        return rows

    def search(self, rows, name, value):
        """Source or target id or ref: exact matches first, then substring (case-insensitive)."""
        q = value  # stripped by the form field; an empty value never reaches a filter
        target = target_row(self.integration)
        exact = (
            Q(remote_id=q)
            | Q(remote_ref=q)
            | Exists(target.filter(Q(remote_id=q) | Q(remote_ref=q)))
        )
        # The records whose source or target id or ref contains q, from one scan of the remote
        # ids of both connections: on PostgreSQL a BitmapOr of the two trigram indexes
        # (records/migrations/0002_remoteid_trigram_indexes.py). The same test written per row
        # (OR EXISTS(target ...)) cannot use them and scans every source row: 2 s at 1M.
        integration = self.integration
        matching = (
            RemoteId.objects.for_tenant(integration.tenant)
            .filter(connection__in=[integration.source_id, integration.target_id])
            .filter(Q(remote_id__icontains=q) | Q(remote_ref__icontains=q))
        )
        rows = rows.filter(record_id__in=matching.values("record_id")).annotate(
            **{
                MATCH_RANK: Case(
                    When(exact, then=Value(0)), default=Value(1), output_field=IntegerField()
                )
            }
        )
        return rows.order_by(*_ranked(rows, rows.query.order_by))

    def order(self, rows, name, value):
        """One of SORTS; each ends with a unique tie-breaker, and matches a keyset (KEYSETS)."""
        return rows.order_by(*_ranked(rows, SORTS[value]))


def reference_rows(
    integration,
    record_type: str,
    *,
    q: str = "",
    linked: str = "all",
    modified_after=None,
    sort: str = DEFAULT_SORT,
):
    """The filtered, ordered rows of the References table: ReferenceFilterSet's queryset for
    these values (an invalid one is ignored, as in a URL). A lazy queryset of source RemoteIds.

    Each row has `.record` (local_id, last_modified, last_modified_by, version),
    `.remote_id`/`.remote_ref` (source side) and `.target_remote_id`/`.target_remote_ref`.
    """
    values = {"q": q, "linked": linked, "modified_after": modified_after, "sort": sort}
    data = {name: value for name, value in values.items() if value is not None}
    return ReferenceFilterSet(data, integration=integration, record_type=record_type).qs
